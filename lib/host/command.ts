/**
 * Renders a host-script invocation as the `commands` of SSM's AWS-RunShellScript.
 *
 * The scripts travel with the command (base64 of the gzipped files shipped in host/), so a
 * master never runs a stale copy and needs nothing pre-installed but bash, gzip and etcd.
 * Compressed, lib.sh and the largest script take ~15 KB of the 64 KB a command may have (as
 * text they took 50 KB and, with the largest arguments, passed the limit). Every
 * argument is checked against a strict character set and single-quoted: values reach the
 * host as data, never as shell syntax. The wrapper is POSIX sh (SSM runs commands with sh).
 */
import { gzipSync } from 'node:zlib';
import { patterns, ValidationError } from '../validate';

export const HOST_SCRIPT_NAMES = ['etcd-mount.sh', 'etcd-member.sh', 'etcd-query.sh', 'etcdctl.sh', 'etcd-snapshot.sh', 'etcd-restore.sh'] as const;
export type HostScriptName = (typeof HOST_SCRIPT_NAMES)[number];

/** The text of host/lib.sh and each script; see host-scripts.ts for how it is loaded. */
export type HostScriptBundle = Readonly<Record<HostScriptName | 'lib.sh', string>>;

const SAFE_ARG = /^[A-Za-z0-9._:/=,@+-]{0,2048}$/;

/**
 * An argument's kind decides its size. The value of a `--…-b64` flag is a base64url payload (a
 * presigned URL, its headers): a URL signed with role credentials carries the session token
 * (STS: "typically less than 4096 bytes"), so these may be as long as the host itself accepts
 * (8,192: `qk_max b64url` in host/lib.sh, `patterns.b64url`). Everything else stays ≤ 2,048.
 */
export type ArgKind = 'plain' | 'b64url';

export function quoteArg(arg: string, kind: ArgKind = 'plain'): string {
  if (kind === 'b64url') {
    if (!patterns.b64url.test(arg)) throw new ValidationError(`refusing host-script argument ${JSON.stringify(arg.slice(0, 80))}: not base64url of at most 8192 characters`);
  } else if (!SAFE_ARG.test(arg) || arg.includes('..')) {
    throw new ValidationError(`refusing host-script argument ${JSON.stringify(arg.slice(0, 80))}: only [A-Za-z0-9._:/=,@+-] are allowed, and no '..'`);
  }
  return `'${arg}'`;
}

/**
 * SendCommand refuses a document and parameters over 64 KB (MaxDocumentSizeExceeded,
 * https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html):
 * AWS-RunShellScript itself is ~1 KB, so the rendered commands stay under 60,000 bytes.
 */
export const MAX_COMMAND_BYTES = 60_000;

/** gzip, then base64: `base64 -d | gzip -dc` on the host gives back the exact text. */
const packed = (text: string): string => gzipSync(Buffer.from(text, 'utf8'), { level: 9 }).toString('base64');

export function renderHostCommand(bundle: HostScriptBundle, script: HostScriptName, args: readonly string[]): string[] {
  if (args.length > 64) throw new ValidationError(`too many host-script arguments (${args.length})`);
  const quoted = args.map((a, i) => quoteArg(a, i > 0 && /^--[a-z-]+-b64$/.test(args[i - 1]!) ? 'b64url' : 'plain')).join(' ');
  const commands = [
    'set -eu',
    'qk_dir="$(mktemp -d /tmp/quorum-keeper.XXXXXX)"',
    'trap \'rm -rf "$qk_dir"\' EXIT',
    `printf '%s' '${packed(bundle['lib.sh'])}' | base64 -d | gzip -dc > "$qk_dir/lib.sh"`,
    `printf '%s' '${packed(bundle[script])}' | base64 -d | gzip -dc > "$qk_dir/${script}"`,
    `bash "$qk_dir/${script}"${quoted ? ` ${quoted}` : ''}`,
  ];
  const bytes = Buffer.byteLength(JSON.stringify({ commands }));
  if (bytes > MAX_COMMAND_BYTES) throw new ValidationError(`${script}: the SSM command would be ${bytes} bytes, over the ${MAX_COMMAND_BYTES} that fit SSM's 64 KB limit`);
  return commands;
}
