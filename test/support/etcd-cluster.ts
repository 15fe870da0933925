/**
 * A real N-member etcd cluster on 127.0.0.1 for tests: free ports, temp dirs, members started
 * with setsid (their own session, so no job-control signal reaches them), always cleaned up by
 * destroy() — and by sandbox/procs.reapStrays() after a crashed run. Mutual TLS on client and
 * peer URLs, as production etcd and the sandbox's members (certificates from the sandbox's CA,
 * sandbox/pki.ts); `tls` / `etcdctlFlags` are what a client presents.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { etcdFetch } from '../../sandbox/etcd-http';
import type { EtcdTls } from '../../lib/etcd';
import { SandboxPki } from '../../sandbox/pki';
import { freePort, waitFor } from '../../sandbox/ports';
import { isAlive, killHard, makeTempDir, removeDir } from '../../sandbox/procs';

export interface TestMember {
  name: string;
  peerUrl: string;
  clientUrl: string;
  dataDir: string;
  logFile: string;
  pid: number | null;
}

export class EtcdTestCluster {
  private readonly procs = new Map<string, ChildProcess>();

  private constructor(
    readonly dir: string,
    readonly token: string,
    readonly members: TestMember[],
  ) {}

  static async start(size = 3, opts: { extraFlags?: string[] } = {}): Promise<EtcdTestCluster> {
    const dir = makeTempDir('etcd');
    const members: TestMember[] = [];
    for (let i = 0; i < size; i++) {
      const name = `etcd-${String.fromCharCode(97 + i)}`;
      members.push({
        name,
        peerUrl: `https://127.0.0.1:${await freePort()}`,
        clientUrl: `https://127.0.0.1:${await freePort()}`,
        dataDir: join(dir, name),
        logFile: join(dir, `${name}.log`),
        pid: null,
      });
    }
    const cluster = new EtcdTestCluster(dir, `qk-test-${Date.now()}`, members);
    cluster.extraFlags = opts.extraFlags ?? [];
    try {
      for (const m of members) await cluster.issueCerts(m);
      for (const m of members) cluster.spawnMember(m, 'new');
      await cluster.waitHealthy();
    } catch (err) {
      await cluster.destroy();
      throw err;
    }
    return cluster;
  }

  private extraFlags: string[] = [];
  private readonly tlsFlags = new Map<string, string[]>();

  /** What a client presents (the harness's certificate). */
  get tls(): EtcdTls {
    return SandboxPki.current().harness;
  }

  /** etcdctl's flags for `tls`. */
  get etcdctlFlags(): string[] {
    return SandboxPki.current().harnessEtcdctlFlags;
  }

  private async issueCerts(m: TestMember): Promise<void> {
    this.tlsFlags.set(m.name, await (await SandboxPki.get()).etcdFlags(join(this.dir, `${m.name}.pki`), m.name));
  }

  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  member(name: string): TestMember {
    const m = this.members.find((x) => x.name === name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  }

  initialCluster(members = this.members): string {
    return members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
  }

  private spawnMember(m: TestMember, state: 'new' | 'existing', initialCluster = this.initialCluster()): void {
    mkdirSync(m.dataDir, { recursive: true, mode: 0o700 });
    const log = openSync(m.logFile, 'a');
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v;
    const child = spawn('setsid', [
      'etcd', '--name', m.name, '--data-dir', m.dataDir,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', this.token,
      ...(this.tlsFlags.get(m.name) ?? []), ...this.extraFlags,
    ], { stdio: ['ignore', log, log], env });
    closeSync(log);
    child.unref();
    this.procs.set(m.name, child);
    m.pid = child.pid ?? null;
  }

  /** Start a stopped member again on its existing data dir. */
  start(name: string): void {
    const m = this.member(name);
    if (m.pid !== null && isAlive(m.pid)) throw new Error(`${name} is already running`);
    this.spawnMember(m, 'existing');
  }

  /** Reserve ports and a data dir for a member that is not in the cluster yet (before `member add`). */
  async prepare(name: string): Promise<TestMember> {
    const m: TestMember = {
      name,
      peerUrl: `https://127.0.0.1:${await freePort()}`,
      clientUrl: `https://127.0.0.1:${await freePort()}`,
      dataDir: join(this.dir, name),
      logFile: join(this.dir, `${name}.log`),
      pid: null,
    };
    await this.issueCerts(m);
    this.members.push(m);
    return m;
  }

  /** Start a prepared member after `member add`, with --initial-cluster-state existing. */
  join(name: string, initialCluster: string): void {
    this.spawnMember(this.member(name), 'existing', initialCluster);
  }

  /** Move a stopped member to a new peer URL (the caller did `member update` first). */
  async movePeerPort(name: string): Promise<string> {
    const m = this.member(name);
    if (m.pid !== null) throw new Error(`${name} must be stopped first`);
    m.peerUrl = `https://127.0.0.1:${await freePort()}`;
    return m.peerUrl;
  }

  /**
   * Disaster recovery on the test cluster: stop every member, restore each data dir from
   * `snapshot` with a new cluster token (old dirs kept aside), start them all again.
   */
  async restoreAll(snapshot: string): Promise<void> {
    for (const m of this.members) await this.stop(m.name);
    const token = `${this.token}-restored-${Date.now()}`;
    for (const m of this.members) {
      renameSync(m.dataDir, `${m.dataDir}.before-restore`);
      execFileSync('etcdctl', ['snapshot', 'restore', snapshot, `--name=${m.name}`, `--data-dir=${m.dataDir}`,
        `--initial-cluster=${this.initialCluster()}`, `--initial-cluster-token=${token}`, `--initial-advertise-peer-urls=${m.peerUrl}`], { env: { PATH: process.env.PATH, ETCDCTL_API: '3' }, stdio: 'ignore' });
    }
    for (const m of this.members) this.start(m.name);
    await this.waitHealthy();
  }

  /** SIGKILL: a crash. */
  kill(name: string): void {
    const m = this.member(name);
    if (m.pid !== null) killHard(m.pid);
    m.pid = null;
  }

  /** SIGTERM and wait for exit: a clean stop. */
  async stop(name: string): Promise<void> {
    const m = this.member(name);
    const pid = m.pid;
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
    await waitFor(`${name} to exit`, () => Promise.resolve(isAlive(pid) ? undefined : true), { timeoutMs: 15_000, intervalMs: 50 });
    m.pid = null;
  }

  async restart(name: string): Promise<void> {
    await this.stop(name);
    this.start(name);
    await this.waitHealthy([name]);
  }

  async waitHealthy(names = this.members.map((m) => m.name), timeoutMs = 20_000): Promise<void> {
    for (const name of names) {
      const m = this.member(name);
      await waitFor(`${name} to be healthy`, async () => {
        const res = await etcdFetch(`${m.clientUrl}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        if (!res) return undefined;
        const body = (await res.json().catch(() => ({}))) as { health?: string };
        return body.health === 'true' ? true : undefined;
      }, { timeoutMs });
    }
  }

  destroy(): Promise<void> {
    for (const m of this.members) {
      if (m.pid !== null) killHard(m.pid);
      m.pid = null;
    }
    if (!process.env.QK_KEEP_TMP) removeDir(this.dir);
    return Promise.resolve();
  }
}
