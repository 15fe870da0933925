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
  'dry-run': { type: 'boolean' }, plan: { type: 'boolean' }, 'state-table': { type: 'string' }, 'alert-topic-arn': { type: 'string' },
  stack: { type: 'string' },
} as const;

/** Splits argv into the command words and the flags; an unknown flag throws (ERR_PARSE_ARGS_*). */
export function parse(argv: string[]) {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, strict: true, options: OPTIONS });
  return { values, positionals };
}

export type Values = ReturnType<typeof parse>['values'];

/**
 * The shape of every value flag. Where the Lambdas take the same setting, the shape is the one
 * their configuration accepts (lib/config.ts). `hint` ends the message.
 */
const SHAPES = {
  cluster: { re: patterns.clusterName },
  region: { re: /^[a-z]{2}(-[a-z]+)+-\d$/, hint: 'an AWS region such as eu-west-1' },
  profile: { re: /^[A-Za-z0-9._+@=,:/-]{1,128}$/, hint: 'an AWS profile name' },
  endpoint: { re: /^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/ },
  bucket: { re: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/ },
  prefix: { re: /^[A-Za-z0-9._-]{1,64}(\/[A-Za-z0-9._-]{1,64}){0,3}$/, hint: 'a key prefix such as etcd-backups (no leading or trailing slash)' },
  'kms-key-id': {
    re: /^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[A-Za-z0-9/_-]{1,256}|alias\/[A-Za-z0-9/_-]{1,256}|[0-9a-f-]{36})$/,
    hint: 'a KMS key ARN, key ID or alias/name',
  },
  'work-dir': { re: /^\/(?!.*\.\.)[A-Za-z0-9._/-]{1,255}$/, hint: 'an absolute path without ..' },
  'tag-cluster': { re: /^[\p{L}\p{N} _.:/=+@-]{1,128}$/u, hint: 'an EC2 tag key' },
  'tag-member': { re: /^[\p{L}\p{N} _.:/=+@-]{1,128}$/u, hint: 'an EC2 tag key' },
  'state-table': { re: /^[A-Za-z0-9_.-]{3,255}$/ },
  'alert-topic-arn': { re: /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/ },
  snapshot: { re: /^[A-Za-z0-9._/-]{1,1024}$/, hint: 'latest or a backup key' },
  token: { re: patterns.token, hint: 'letters, digits, . _ - (at most 128)' },
  rollback: { re: patterns.token },
  stack: { re: /^[A-Za-z][A-Za-z0-9-]{0,127}$/, hint: 'a CloudFormation stack name (letters, digits, dashes; e.g. quorum-keeper-prod)' },
} satisfies Record<string, { re: RegExp; hint?: string }>;

export type ValueFlag = keyof typeof SHAPES;

/** The first non-empty of `values` (the flag, then its environment variables), checked; undefined when none is given. */
export function flag(name: ValueFlag, ...values: Array<string | undefined>): string | undefined {
  const v = values.find((x) => x !== undefined && x !== '');
  if (v === undefined) return undefined;
  const shape: { re: RegExp; hint?: string } = SHAPES[name];
  if (!shape.re.test(v)) throw new UsageError(`invalid --${name} ${JSON.stringify(v)}${shape.hint ? `: ${shape.hint}` : ''}`);
  return v;
}

/** As `flag`, for a flag the command cannot do without. */
export function need(name: ValueFlag, ...values: Array<string | undefined>): string {
  const v = flag(name, ...values);
  if (v === undefined) throw new UsageError(`missing --${name}`);
  return v;
}

/** `--cluster`, which every command needs. */
export function clusterArg(v: Values): string {
  return need('cluster', v.cluster);
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
