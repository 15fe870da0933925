/**
 * Typed builders for the etcdctl / etcdutl invocations Quorum Keeper uses. A builder returns
 * an argv (no shell involved) and validates every value against a strict pattern, so the same
 * invocation can run locally (execFile) or on a master through the guarded host script.
 */
import { check, ValidationError } from '../validate';
import type { MemberId } from './ids';
import { memberIdFromHex } from './ids';

export type EtcdBinary = 'etcdctl' | 'etcdutl';

/** etcdctl command timeout for status reads: an unreachable member costs this much per read. */
export const STATUS_TIMEOUT = '2s';

export interface EtcdInvocation {
  bin: EtcdBinary;
  args: string[];
}

export interface EtcdTls {
  cacert: string;
  cert: string;
  key: string;
}

export interface EtcdConnection {
  endpoints: readonly string[];
  /** etcdctl `--command-timeout` (default 5s). */
  commandTimeout?: string;
  /** etcdctl `--dial-timeout` (default 2s). */
  dialTimeout?: string;
  tls?: EtcdTls;
}

function urls(list: readonly string[], field: string): string {
  if (list.length === 0) throw new ValidationError(`${field}: at least one URL is required`);
  if (list.length > 16) throw new ValidationError(`${field}: too many URLs (${list.length})`);
  return list.map((u) => check('url', u, field)).join(',');
}

function connArgs(conn: EtcdConnection): string[] {
  const args = [`--endpoints=${urls(conn.endpoints, 'endpoints')}`];
  args.push(`--command-timeout=${check('duration', conn.commandTimeout ?? '5s', 'command timeout')}`);
  args.push(`--dial-timeout=${check('duration', conn.dialTimeout ?? '2s', 'dial timeout')}`);
  if (conn.tls) {
    args.push(`--cacert=${check('absPath', conn.tls.cacert, 'cacert')}`);
    args.push(`--cert=${check('absPath', conn.tls.cert, 'cert')}`);
    args.push(`--key=${check('absPath', conn.tls.key, 'key')}`);
  }
  return args;
}

function hex(id: MemberId): string {
  // Re-validate: a MemberId may have been cast from unchecked input.
  return memberIdFromHex(id);
}

const ctl = (conn: EtcdConnection, ...rest: string[]): EtcdInvocation => ({ bin: 'etcdctl', args: [...connArgs(conn), ...rest] });

export const etcdctl = {
  memberList: (conn: EtcdConnection) => ctl(conn, 'member', 'list', '-w', 'json'),
  memberAdd: (conn: EtcdConnection, name: string, peerUrls: readonly string[], opts: { learner: boolean }) =>
    ctl(conn, 'member', 'add', check('etcdName', name, 'member name'), `--peer-urls=${urls(peerUrls, 'peer URLs')}`, ...(opts.learner ? ['--learner'] : []), '-w', 'json'),
  /** No `-w json`: etcdctl 3.4.23 panics in its JSON printer for promote (after applying it). */
  memberPromote: (conn: EtcdConnection, id: MemberId) => ctl(conn, 'member', 'promote', hex(id)),
  memberRemove: (conn: EtcdConnection, id: MemberId) => ctl(conn, 'member', 'remove', hex(id), '-w', 'json'),
  memberUpdate: (conn: EtcdConnection, id: MemberId, peerUrls: readonly string[]) =>
    ctl(conn, 'member', 'update', hex(id), `--peer-urls=${urls(peerUrls, 'peer URLs')}`, '-w', 'json'),
  endpointStatus: (conn: EtcdConnection, opts: { cluster: boolean }) =>
    ctl(conn, 'endpoint', 'status', ...(opts.cluster ? ['--cluster'] : []), '-w', 'json'),
  endpointHealth: (conn: EtcdConnection, opts: { cluster: boolean }) =>
    ctl(conn, 'endpoint', 'health', ...(opts.cluster ? ['--cluster'] : []), '-w', 'json'),
  /** Must reach the current leader: pass every member's endpoint. */
  moveLeader: (conn: EtcdConnection, target: MemberId) => ctl(conn, 'move-leader', hex(target)),
  alarmList: (conn: EtcdConnection) => ctl(conn, 'alarm', 'list', '-w', 'json'),
  alarmDisarm: (conn: EtcdConnection) => ctl(conn, 'alarm', 'disarm', '-w', 'json'),
  /** Defragments the given endpoints one by one (never pass `--cluster` here: it stalls every member at once). */
  defrag: (conn: EtcdConnection) => ctl(conn, 'defrag'),
  /** etcd requires exactly one endpoint for `snapshot save`. */
  snapshotSave: (conn: EtcdConnection, file: string) => {
    if (conn.endpoints.length !== 1) throw new ValidationError(`snapshot save needs exactly one endpoint, got ${conn.endpoints.length}`);
    return ctl(conn, 'snapshot', 'save', check('absPath', file, 'snapshot file'));
  },
};

export interface RestoreOptions {
  name: string;
  dataDir: string;
  initialCluster: ReadonlyArray<{ name: string; peerUrls: readonly string[] }>;
  token: string;
  advertisePeerUrls: readonly string[];
  /** Needed for a raw `member/snap/db` copy, which has no snapshot hash. */
  skipHashCheck?: boolean;
}

/** etcd 3.5+ moved offline snapshot commands to `etcdutl`; 3.4 only has `etcdctl snapshot …`. */
export const snapshotOffline = {
  status: (bin: EtcdBinary, file: string): EtcdInvocation => ({ bin, args: ['snapshot', 'status', check('absPath', file, 'snapshot file'), '-w', 'json'] }),
  restore: (bin: EtcdBinary, file: string, o: RestoreOptions): EtcdInvocation => {
    const initial = o.initialCluster
      .map((m) => m.peerUrls.map((u) => `${check('etcdName', m.name, 'member name')}=${check('url', u, 'peer URL')}`).join(','))
      .join(',');
    if (!o.initialCluster.some((m) => m.name === o.name)) throw new ValidationError(`restore: member ${o.name} is not in the initial cluster`);
    return {
      bin,
      args: [
        'snapshot', 'restore', check('absPath', file, 'snapshot file'),
        `--name=${check('etcdName', o.name, 'member name')}`,
        `--data-dir=${check('absPath', o.dataDir, 'data dir')}`,
        `--initial-cluster=${initial}`,
        `--initial-cluster-token=${check('token', o.token, 'cluster token')}`,
        `--initial-advertise-peer-urls=${urls(o.advertisePeerUrls, 'advertise peer URLs')}`,
        ...(o.skipHashCheck ? ['--skip-hash-check'] : []),
      ],
    };
  },
  /** Probe: `etcdutl version` succeeds only where etcdutl exists (etcd 3.5+). */
  probeEtcdutl: (): EtcdInvocation => ({ bin: 'etcdutl', args: ['version'] }),
};
