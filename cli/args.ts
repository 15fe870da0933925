/**
 * The CLI's flags, the terminal it talks to, and the checks a flag value passes at the edge
 * (before any AWS client exists). A bad value is a UsageError: exit 2 with the usage text.
 */
import { parseArgs } from 'node:util';
import { patterns } from '../lib/validate';

export class UsageError extends Error {}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Asks a question on the terminal; null when there is no terminal. */
  ask: ((q: string) => Promise<string>) | null;
  env: NodeJS.ProcessEnv;
}

const OPTIONS = {
  cluster: { type: 'string' }, snapshot: { type: 'string' }, token: { type: 'string' }, rollback: { type: 'string' },
  bucket: { type: 'string' }, prefix: { type: 'string' }, 'kms-key-id': { type: 'string' },
  region: { type: 'string' }, profile: { type: 'string' }, endpoint: { type: 'string' },
  json: { type: 'boolean' }, yes: { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
  'work-dir': { type: 'string' }, 'tag-cluster': { type: 'string' }, 'tag-member': { type: 'string' },
  'pending-grace-sec': { type: 'string' }, 'stray-grace-sec': { type: 'string' }, 'repair-grace-sec': { type: 'string' },
  'dry-run': { type: 'boolean' }, 'state-table': { type: 'string' }, 'alert-topic-arn': { type: 'string' },
} as const;

/** Splits argv into the command words and the flags; an unknown flag throws (ERR_PARSE_ARGS_*). */
export function parse(argv: string[]) {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  return { values, positionals };
}

export type Values = ReturnType<typeof parse>['values'];

/** The value of a required flag, checked against `pattern` when given. */
export function need(v: string | undefined, name: string, pattern?: RegExp): string {
  if (!v) throw new UsageError(`missing --${name}`);
  if (pattern && !pattern.test(v)) throw new UsageError(`invalid --${name} ${JSON.stringify(v)}`);
  return v;
}

/** `--cluster`, which every command needs. */
export function clusterArg(v: Values): string {
  return need(v.cluster, 'cluster', patterns.clusterName);
}

/** A whole number of seconds, or `dflt` when the flag is absent. */
export function seconds(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d{1,6}$/.test(v)) throw new UsageError(`invalid --${name} ${JSON.stringify(v)}: whole seconds`);
  return Number(v);
}

/** Asks for `expected` to be typed back (or takes --yes); false when the answer differs. */
export async function confirm(v: Values, io: CliIo, question: string, expected: string): Promise<boolean> {
  if (v.yes) return true;
  if (!io.ask) throw new UsageError('no terminal to confirm on: pass --yes to go ahead without a prompt');
  return (await io.ask(`${question} Type "${expected}" to continue: `)).trim() === expected;
}
