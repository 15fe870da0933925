/**
 * Renders a host-script invocation as the `commands` of SSM's AWS-RunShellScript.
 *
 * The scripts travel with the command (base64 of the exact files shipped in host/), so a
 * master never runs a stale copy and needs nothing pre-installed but bash and etcd. Every
 * argument is checked against a strict character set and single-quoted: values reach the
 * host as data, never as shell syntax. The wrapper is POSIX sh (SSM runs commands with sh).
 */
import { ValidationError } from '../validate';

export const HOST_SCRIPT_NAMES = ['etcd-mount.sh', 'etcd-member.sh', 'etcdctl.sh', 'etcd-snapshot.sh', 'etcd-restore.sh'] as const;
export type HostScriptName = (typeof HOST_SCRIPT_NAMES)[number];

/** The text of host/lib.sh and each script; see host-scripts.ts for how it is loaded. */
export type HostScriptBundle = Readonly<Record<HostScriptName | 'lib.sh', string>>;

const SAFE_ARG = /^[A-Za-z0-9._:/=,@+-]{0,2048}$/;

export function quoteArg(arg: string): string {
  if (!SAFE_ARG.test(arg) || arg.includes('..')) {
    throw new ValidationError(`refusing host-script argument ${JSON.stringify(arg.slice(0, 80))}: only [A-Za-z0-9._:/=,@+-] are allowed, and no '..'`);
  }
  return `'${arg}'`;
}

const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');

export function renderHostCommand(bundle: HostScriptBundle, script: HostScriptName, args: readonly string[]): string[] {
  if (args.length > 64) throw new ValidationError(`too many host-script arguments (${args.length})`);
  const quoted = args.map(quoteArg).join(' ');
  return [
    'set -eu',
    'qk_dir="$(mktemp -d /tmp/quorum-keeper.XXXXXX)"',
    'trap \'rm -rf "$qk_dir"\' EXIT',
    `printf '%s' '${b64(bundle['lib.sh'])}' | base64 -d > "$qk_dir/lib.sh"`,
    `printf '%s' '${b64(bundle[script])}' | base64 -d > "$qk_dir/${script}"`,
    `bash "$qk_dir/${script}"${quoted ? ` ${quoted}` : ''}`,
  ];
}
