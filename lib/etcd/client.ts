/**
 * The etcd client the flows use: typed calls over an injected runner. The runner decides
 * where etcdctl runs (locally with execFile, or on a master through SSM and host/etcdctl.sh).
 */
import { type EtcdBinary, type EtcdConnection, type EtcdInvocation, etcdctl, snapshotOffline, type RestoreOptions } from './commands';
import { classifyEtcdctlError, EtcdError, type EtcdErrorKind, summariseStderr } from './errors';
import type { MemberId } from './ids';
import {
  type Alarm, type EndpointHealth, type EndpointStatusReport, type MemberAddResult, type MemberList, type SnapshotStatus,
  parseAlarmList, parseEndpointHealth, parseEndpointStatus, parseMemberAdd, parseMemberList, parseMoveLeader, parseSnapshotStatus,
} from './parsers';

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

export type EtcdRunner = (inv: EtcdInvocation) => Promise<RunResult>;

function describe(inv: EtcdInvocation): string {
  return [inv.bin, ...inv.args.filter((a) => !a.startsWith('--endpoints=') && !a.endsWith('-timeout=5s'))].join(' ');
}

async function runOk(runner: EtcdRunner, inv: EtcdInvocation): Promise<RunResult> {
  const res = await runner(inv);
  if (res.exitCode !== 0) {
    const summary = summariseStderr(res.stderr) || `exit code ${res.exitCode}`;
    throw new EtcdError(res.exitCode === 127 ? 'not-installed' : classifyEtcdctlError(res.stderr), `${describe(inv)}: ${summary}`, {
      command: describe(inv),
      exitCode: res.exitCode,
      stderr: res.stderr.slice(-4000),
    });
  }
  return res;
}

/** runOk for an idempotent change: an error of kind `done` means it was already made (a retried request). */
async function runOkUnless(runner: EtcdRunner, inv: EtcdInvocation, done: EtcdErrorKind): Promise<void> {
  try {
    await runOk(runner, inv);
  } catch (err) {
    if (!(err instanceof EtcdError && err.kind === done)) throw err;
  }
}

export class EtcdClient {
  constructor(
    private readonly runner: EtcdRunner,
    readonly conn: EtcdConnection,
  ) {}

  /** A client for the same cluster through other endpoints (e.g. one member only). */
  withEndpoints(endpoints: readonly string[]): EtcdClient {
    return new EtcdClient(this.runner, { ...this.conn, endpoints });
  }

  async memberList(): Promise<MemberList> {
    return parseMemberList((await runOk(this.runner, etcdctl.memberList(this.conn))).stdout);
  }

  async memberAdd(name: string, peerUrls: readonly string[], opts: { learner: boolean }): Promise<MemberAddResult> {
    return parseMemberAdd((await runOk(this.runner, etcdctl.memberAdd(this.conn, name, peerUrls, opts))).stdout);
  }

  /**
   * Promotes a learner. Idempotent: a member that is already a voter counts as promoted (a
   * promote forwarded between members can be applied even when the caller saw an error).
   * Throws kind 'learner-not-in-sync' while the learner is still catching up: retry that.
   */
  memberPromote(id: MemberId): Promise<void> {
    return runOkUnless(this.runner, etcdctl.memberPromote(this.conn, id), 'not-a-learner');
  }

  /**
   * Removes a member. Idempotent: "member not found" counts as removed (etcdctl retries a
   * request whose answer was lost, and the retry then finds the member already gone).
   */
  memberRemove(id: MemberId): Promise<void> {
    return runOkUnless(this.runner, etcdctl.memberRemove(this.conn, id), 'member-not-found');
  }

  async memberUpdate(id: MemberId, peerUrls: readonly string[]): Promise<MemberList> {
    return parseMemberList((await runOk(this.runner, etcdctl.memberUpdate(this.conn, id, peerUrls))).stdout);
  }

  /**
   * Never throws for an unreachable member: it is listed in `unreachable`. Throws only when no
   * endpoint at all answered (and etcdctl said why).
   */
  /**
   * `endpoints` (with `cluster: false`) asks just those members — e.g. all but one known to be
   * dead, whose dial alone would cost the whole timeout.
   */
  async endpointStatus(opts: { cluster: boolean; timeout?: string; endpoints?: readonly string[] }): Promise<EndpointStatusReport> {
    // A dead member costs the whole command timeout: status reads may use a shorter one.
    const conn = { ...this.conn, ...(opts.timeout ? { commandTimeout: opts.timeout } : {}), ...(opts.endpoints ? { endpoints: [...opts.endpoints] } : {}) };
    const inv = etcdctl.endpointStatus(conn, opts);
    const res = await this.runner(inv);
    const report = parseEndpointStatus(res.stdout, res.stderr, opts.cluster ? [] : conn.endpoints);
    if (res.exitCode !== 0 && report.statuses.length === 0 && report.unreachable.length === 0) {
      throw new EtcdError(classifyEtcdctlError(res.stderr), `${describe(inv)}: ${summariseStderr(res.stderr)}`, {
        command: describe(inv), exitCode: res.exitCode, stderr: res.stderr.slice(-4000),
      });
    }
    return report;
  }

  /** Health of each endpoint; unhealthy ones are returned, not thrown. */
  async endpointHealth(opts: { cluster: boolean }): Promise<EndpointHealth[]> {
    const inv = etcdctl.endpointHealth(this.conn, opts);
    const res = await this.runner(inv);
    const health = parseEndpointHealth(res.stdout);
    if (res.exitCode !== 0 && health.length === 0) {
      throw new EtcdError(classifyEtcdctlError(res.stderr), `${describe(inv)}: ${summariseStderr(res.stderr)}`, {
        command: describe(inv), exitCode: res.exitCode, stderr: res.stderr.slice(-4000),
      });
    }
    return health;
  }

  async moveLeader(target: MemberId): Promise<{ from: MemberId; to: MemberId }> {
    return parseMoveLeader((await runOk(this.runner, etcdctl.moveLeader(this.conn, target))).stdout);
  }

  async alarmList(): Promise<Alarm[]> {
    return parseAlarmList((await runOk(this.runner, etcdctl.alarmList(this.conn))).stdout);
  }

  async defrag(): Promise<void> {
    await runOk(this.runner, etcdctl.defrag(this.conn));
  }

  /** Saves a snapshot from this client's single endpoint to `file` on the runner's host. */
  async snapshotSave(file: string): Promise<void> {
    await runOk(this.runner, etcdctl.snapshotSave(this.conn, file));
  }
}

/** Offline snapshot tooling on one host: etcdutl where it exists (3.5+), else etcdctl (3.4). */
export class SnapshotTool {
  private constructor(
    private readonly runner: EtcdRunner,
    readonly bin: EtcdBinary,
  ) {}

  static async detect(runner: EtcdRunner): Promise<SnapshotTool> {
    const probe = await runner(snapshotOffline.probeEtcdutl());
    return new SnapshotTool(runner, probe.exitCode === 0 ? 'etcdutl' : 'etcdctl');
  }

  async status(file: string): Promise<SnapshotStatus> {
    return parseSnapshotStatus((await runOk(this.runner, snapshotOffline.status(this.bin, file))).stdout);
  }

  async restore(file: string, opts: RestoreOptions): Promise<void> {
    await runOk(this.runner, snapshotOffline.restore(this.bin, file, opts));
  }
}
