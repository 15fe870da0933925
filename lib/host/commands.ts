/**
 * The host port: every host-script subcommand a flow runs, as typed data, and its typed answer.
 *
 * A flow says what it wants done on a master (`{ kind: 'member-urls' }`), never which script,
 * which flags or how to read its output: `argvOf` is the one place a command becomes a script's
 * argument list, `HOST_ANSWERS` the one place an answer is checked, and a failure reaches the flow
 * as a `HostFailure` whose `kind` comes from the script's exit code (host/lib.sh), never from
 * matching its stderr. The port itself is one method (`Hosts.run`): a fake for unit tests
 * switches on `kind`; the SSM implementation (lib/aws/hosts.ts) is the only one that knows about
 * Run Command. Why one `run` over a union rather than a method per subcommand: docs/architecture.md.
 *
 * Pure: no AWS import.
 */
import { z } from 'zod';
import type { EtcdRunner } from '../etcd/client';
import type { HostScriptName } from './command';

/** A slot's volume as the mount script names it. */
export interface VolumeRef { volumeId: string; cluster: string; member: string }

export type HostCommand =
  | { kind: 'member-status' }
  | { kind: 'member-urls' }
  /** `ifQuorumWithoutMe`: the host checks, just before, that the other voters still make a quorum (exit `unsafe` otherwise, etcd left running). */
  | { kind: 'member-stop'; ifQuorumWithoutMe?: boolean }
  /** `token`: the cluster token of a new cluster (bootstrap seed, restore); an existing member joins without. */
  | {
    kind: 'member-start'; name: string; initialCluster: string; state: 'new' | 'existing'; token?: string;
    /** A running etcd is never restarted for a configuration change (a repair): the answer's `configPending` says so. */
    keepRunning?: boolean;
  }
  | { kind: 'apiserver-ready' }
  /** The boot guard alone on etcd's unit (adopt): a drop-in already there is left as it is. */
  | { kind: 'member-guard' }
  | ({ kind: 'volume-mount'; device: string; allowFormat: boolean } & VolumeRef)
  | ({ kind: 'volume-inspect'; device?: string } & VolumeRef)
  | ({ kind: 'volume-adopt'; device?: string } & VolumeRef)
  | ({ kind: 'volume-record-member-id'; memberId: string } & VolumeRef)
  | ({ kind: 'volume-unmount' } & VolumeRef)
  | { kind: 'snapshot-prepare'; workDir: string; endpoint: string; compressor: 'auto' | 'zstd' | 'gzip' }
  /** `uploadUrl` and `headers` travel base64url-encoded (a presigned URL carries the session token). */
  | { kind: 'snapshot-upload'; workDir: string; file: string; uploadUrl: string; headers: readonly string[] }
  | { kind: 'snapshot-discard'; workDir: string; file: string }
  | { kind: 'restore-inspect' }
  /** `bumpRevision`: raise the restored revision by this much and mark it compacted (0: not at all). */
  | { kind: 'restore-restore'; workDir: string; url: string; sha256: string; compressor: 'zstd' | 'gzip'; name: string; initialCluster: string; token: string; bumpRevision: number }
  | { kind: 'restore-verify'; revision: number }
  /** Read-only readiness of one master for a snapshot of `size` bytes (`rawSize` uncompressed). */
  | { kind: 'restore-preflight'; workDir: string; size: number; rawSize: number; compressor: 'zstd' | 'gzip' }
  | { kind: 'restore-rollback'; token: string };

export type HostCommandKind = HostCommand['kind'];

const b64 = (s: string) => Buffer.from(s).toString('base64url');
const volumeArgs = (v: VolumeRef) => ['--volume-id', v.volumeId, '--cluster', v.cluster, '--member', v.member];

/** The one place a command becomes a script and its arguments (each still checked by renderHostCommand and by the script). */
export function argvOf(c: HostCommand): { script: HostScriptName; args: string[] } {
  const member = (...args: string[]) => ({ script: 'etcd-member.sh' as const, args });
  const mount = (...args: string[]) => ({ script: 'etcd-mount.sh' as const, args });
  const snapshot = (...args: string[]) => ({ script: 'etcd-snapshot.sh' as const, args });
  const restore = (...args: string[]) => ({ script: 'etcd-restore.sh' as const, args });
  switch (c.kind) {
    case 'member-status': return member('status');
    case 'member-urls': return member('urls');
    case 'member-stop': return member('stop', ...(c.ifQuorumWithoutMe ? ['--if-quorum-without-me'] : []));
    case 'member-start': return member('start', '--name', c.name, '--initial-cluster', c.initialCluster, '--initial-cluster-state', c.state, ...(c.token ? ['--token', c.token] : []),
      ...(c.keepRunning ? ['--keep-running'] : []));
    case 'apiserver-ready': return member('apiserver');
    case 'member-guard': return member('guard');
    case 'volume-mount': return mount(...volumeArgs(c), '--device', c.device, ...(c.allowFormat ? ['--allow-format'] : []));
    case 'volume-inspect': return mount('--inspect', ...volumeArgs(c), ...(c.device ? ['--device', c.device] : []));
    case 'volume-adopt': return mount(...volumeArgs(c), ...(c.device ? ['--device', c.device] : []), '--adopt');
    case 'volume-record-member-id': return mount('--record-member-id', c.memberId, ...volumeArgs(c));
    case 'volume-unmount': return mount('--unmount', ...volumeArgs(c));
    case 'snapshot-prepare': return snapshot('prepare', '--work-dir', c.workDir, '--endpoint', c.endpoint, '--compressor', c.compressor);
    case 'snapshot-upload': return snapshot('upload', '--work-dir', c.workDir, '--file', c.file, '--upload-url-b64', b64(c.uploadUrl), '--headers-b64', b64(c.headers.join('\n')));
    case 'snapshot-discard': return snapshot('discard', '--work-dir', c.workDir, '--file', c.file);
    case 'restore-inspect': return restore('inspect');
    case 'restore-restore': return restore('restore', '--work-dir', c.workDir, '--url-b64', b64(c.url), '--sha256', c.sha256, '--compressor', c.compressor,
      '--name', c.name, '--initial-cluster', c.initialCluster, '--token', c.token, ...(c.bumpRevision > 0 ? ['--bump-revision', String(c.bumpRevision)] : []));
    case 'restore-verify': return restore('verify', '--revision', String(c.revision));
    case 'restore-preflight': return restore('preflight', '--work-dir', c.workDir, '--size', String(c.size), '--raw-size', String(c.rawSize), '--compressor', c.compressor);
    case 'restore-rollback': return restore('rollback', '--token', c.token);
  }
}

/** How a command is named in messages and in SSM's Comment: `etcd-member.sh urls`, `etcd-mount.sh --inspect`. */
export function describeCommand(c: HostCommand): string {
  const { script, args } = argvOf(c);
  const sub = args[0] && !args[0].startsWith('--') ? args[0] : (args.find((a) => ['--inspect', '--unmount', '--record-member-id', '--adopt'].includes(a)) ?? 'mount');
  return `${script} ${sub}`;
}

const nullableString = z.string().nullable().default(null);
const memberStatus = z.object({
  running: z.boolean(), healthy: z.boolean(), pid: z.number().int().nullable().default(null), peerUrl: z.string(), clientUrl: z.string(),
  hasData: z.boolean().default(false), etcdVersion: nullableString, serverVersion: nullableString, clusterVersion: nullableString,
  /** `start --keep-running` left a running etcd on an older configuration (applied at its next start). */
  configPending: z.boolean().default(false),
  /** etcd is KNOWN not to run here (no process; its unit inactive or failed) — evidence, unlike `running: false` alone. */
  stopped: z.boolean().default(false),
  /** The boot guard on etcd's unit: `full` (Quorum Keeper's drop-in), `unit` (the guard alone: adopted), `none`. */
  guard: z.enum(['full', 'unit', 'none']).default('none'),
});
const marker = z.object({ cluster: z.string(), member: z.string(), volume: z.string(), memberId: z.string() });
const mounted = z.object({
  result: z.literal('mounted'), volumeId: z.string(), device: z.string(), mountPoint: z.string(), dataDir: z.string(),
  formatted: z.boolean(), hasData: z.boolean(), memberId: nullableString,
});

/** Each command's answer (the script's last stdout line), checked at the edge. */
export const HOST_ANSWERS = {
  'member-status': memberStatus,
  'member-urls': z.object({ peerUrl: z.string(), clientUrl: z.string(), hostIp: nullableString, etcdVersion: nullableString }),
  'member-stop': memberStatus,
  'member-start': memberStatus,
  'apiserver-ready': z.object({ ready: z.boolean(), httpStatus: z.string() }),
  'member-guard': z.object({ result: z.enum(['installed', 'present']), guard: z.enum(['full', 'unit', 'none']) }),
  'volume-mount': mounted,
  'volume-adopt': mounted,
  'volume-inspect': z.object({
    result: z.literal('inspected'), volumeId: z.string(), device: z.string().nullable(), mountedDevice: z.string().nullable(), onVolume: z.boolean(),
    mountPoint: z.string(), dataDir: z.string(), hasData: z.boolean(), dbOpenByEtcd: z.boolean().nullable().default(null), marker: marker.nullable(),
  }),
  'volume-record-member-id': z.object({ result: z.literal('recorded'), volumeId: z.string(), memberId: z.string() }),
  'volume-unmount': z.object({ result: z.enum(['unmounted', 'not-mounted']), volumeId: z.string() }),
  'snapshot-prepare': z.object({
    result: z.literal('prepared'),
    file: z.string().regex(/^snapshot-\d{8}T\d{6}Z\.db\.(zst|gz)$/),
    compressor: z.enum(['zstd', 'gzip']),
    rawSize: z.number().int().nonnegative(),
    size: z.number().int().positive(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    sha256Base64: z.string().regex(/^[A-Za-z0-9+/]{43}=$/),
    status: z.object({ revision: z.number().int().nonnegative(), hash: z.number(), totalKey: z.number() }),
    keys: z.number().int().nonnegative().nullable(),
    etcdVersion: z.string().regex(/^[0-9A-Za-z.+-]{1,32}$/),
    verify: z.literal('pending'),
    ms: z.object({ save: z.number(), compress: z.number() }),
  }),
  'snapshot-upload': z.object({ result: z.literal('uploaded'), verified: z.literal(true), verifyMs: z.number().int().nonnegative(), seconds: z.number().nonnegative() }),
  'snapshot-discard': z.object({ result: z.literal('discarded'), file: z.string() }),
  /** `restored`: the data in place is a restore's own output (token, revision bump), not the member's. */
  'restore-inspect': z.object({
    running: z.boolean(), hasData: z.boolean(), revision: z.number().nullable(), dataDir: z.string(),
    restored: z.object({ token: z.string(), bump: z.number().int().nonnegative() }).nullable().default(null),
  }),
  /** `bumped`: by how much the revision was raised (0: the tool has no --bump-revision, etcd 3.4). */
  'restore-restore': z.object({ result: z.enum(['restored', 'already-restored']), revision: z.number().nullable(), dataDir: z.string(), asideDir: nullableString, bumped: z.number().int().nonnegative().default(0) }),
  'restore-verify': z.object({ revision: z.number(), keysAtRevision: z.number() }),
  /** `canBump`: this master's offline tool can raise the restored revision (etcdutl 3.5.10+). */
  'restore-preflight': z.object({ ready: z.boolean(), problems: z.array(z.string()), canBump: z.boolean().default(false) }),
  'restore-rollback': z.object({ result: z.enum(['rolled-back', 'nothing-to-roll-back']), dataDir: z.string() }),
} satisfies Record<HostCommandKind, z.ZodType>;

export type HostAnswer<K extends HostCommandKind> = z.infer<(typeof HOST_ANSWERS)[K]>;

/**
 * Why a host command failed, from the script's exit code (host/lib.sh, docs/host-scripts.md):
 * - `unfinished`: SSM reports no finished script (delivery or execution timed out, cancelled);
 * - `usage` 2, `blank` 3, `owner` 4, `no-device` 5, `failed` 6, `copy` 7, `corrupt` 8 (the
 *   snapshot's data is damaged), `unverified` 9 (its trial restore gave no verdict);
 * - `truncated`: SSM cut the answer off (stdout is kept to 24,000 characters);
 * - `answer`: the script exited 0 but its answer is not what this version expects.
 */
export type HostFailureKind = 'unfinished' | 'usage' | 'blank' | 'owner' | 'no-device' | 'failed' | 'copy' | 'corrupt' | 'unverified' | 'unsafe' | 'truncated' | 'answer' | 'exit';

/** The host scripts' exit codes (host/lib.sh's QK_EXIT_*). */
export const HOST_EXIT = { usage: 2, blank: 3, owner: 4, 'no-device': 5, failed: 6, copy: 7, corrupt: 8, unverified: 9, unsafe: 10 } as const;

export function failureKindOf(exitCode: number): HostFailureKind {
  if (exitCode === -1) return 'unfinished';
  const hit = Object.entries(HOST_EXIT).find(([, code]) => code === exitCode);
  return hit ? (hit[0] as HostFailureKind) : 'exit';
}

export class HostFailure extends Error {
  override readonly name = 'HostFailure';
  constructor(
    readonly kind: HostFailureKind,
    /** `etcd-member.sh urls` */
    readonly command: string,
    readonly instanceId: string,
    /** The script's own last line of stderr (for people; never matched), or how SSM ended the command. */
    readonly detail: string,
    readonly exitCode: number | null = null,
  ) {
    super(`${command} on ${instanceId} failed (${kind}${exitCode !== null && exitCode >= 0 ? `, exit ${exitCode}` : ''}): ${detail}`);
  }
}

/** Options of one host call: how long to wait, how long the script may run, when to stop. */
export interface HostCallOptions {
  maxWaitSec?: number;
  executionTimeoutSec?: number;
  /** Polling interval floor and ceiling (the flow's timings). */
  minDelaySec?: number;
  maxDelaySec?: number;
  abortSignal?: AbortSignal;
  /** Try once more when SSM reports the command unfinished: only for idempotent commands. */
  retryUnfinished?: boolean;
  onRetry?: (detail: string) => void;
}

/** The masters, as the flows reach them: the one way to a host. */
export interface Hosts {
  /** Runs one host command; its JSON answer checked, a failure typed by the script's exit code. */
  run<C extends HostCommand>(instanceId: string, command: C, opts?: HostCallOptions): Promise<HostAnswer<C['kind']>>;
  /** Whether the master's agent is online (commands sent to an offline one wait and fail). */
  online(instanceId: string): Promise<boolean>;
  /** etcdctl / etcdutl run on the master (`etcdctl.sh`), for an EtcdClient. */
  etcdctl(instanceId: string, opts?: HostCallOptions): EtcdRunner;
}
