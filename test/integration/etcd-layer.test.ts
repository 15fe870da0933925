/** The etcd layer against a real 3-member etcd cluster on 127.0.0.1. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { EtcdClient, EtcdError, localEtcdRunner, SnapshotTool, hasNoLeader, type MemberId } from '../../lib/etcd';
import { waitFor } from '../../sandbox/ports';
import { EtcdTestCluster } from '../support/etcd-cluster';

const runner = localEtcdRunner();

/** Member IDs as etcdctl's table prints them (hex), an independent path from our JSON parsing. */
function tableIds(endpoints: string[], tlsFlags: string[]): Map<string, string> {
  const out = execFileSync('etcdctl', [...tlsFlags, `--endpoints=${endpoints.join(',')}`, 'member', 'list', '-w', 'simple'], { encoding: 'utf8', env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
  const map = new Map<string, string>();
  for (const line of out.trim().split('\n')) {
    const [id, , name] = line.split(', ');
    if (id && name) map.set(name, id);
  }
  return map;
}

describe('etcd layer on a real cluster', () => {
  let cluster: EtcdTestCluster;
  let etcd: EtcdClient;

  beforeEach(async () => {
    cluster = await EtcdTestCluster.start(3);
    etcd = new EtcdClient(runner, { endpoints: cluster.endpoints, tls: cluster.tls });
  });
  afterEach(async () => {
    await cluster?.destroy();
  });

  it('lists members with exactly the IDs etcd itself prints in hex', async () => {
    const list = await etcd.memberList();
    const expected = tableIds(cluster.endpoints, cluster.etcdctlFlags);
    expect(list.members).toHaveLength(3);
    for (const m of list.members) expect(m.id).toBe(expected.get(m.name));
    expect(list.members.map((m) => m.name).sort()).toEqual(['etcd-a', 'etcd-b', 'etcd-c']);
  });

  it('reads status of every member, finds one leader, and moves leadership to a follower', async () => {
    const report = await etcd.endpointStatus({ cluster: true });
    expect(report.unreachable).toEqual([]);
    const leaders = report.statuses.filter((s) => s.isLeader);
    expect(leaders).toHaveLength(1);
    const follower = report.statuses.find((s) => !s.isLeader)!;
    const moved = await etcd.moveLeader(follower.memberId);
    expect(moved).toEqual({ from: leaders[0]!.memberId, to: follower.memberId });
    const after = await etcd.endpointStatus({ cluster: true });
    expect(after.statuses.find((s) => s.isLeader)?.memberId).toBe(follower.memberId);
  });

  it('adds a learner, promotes it once in sync, and removes it again', async () => {
    const joined = await cluster.prepare('etcd-d');
    const added: { id?: MemberId } = {};
    // etcd refuses reconfiguration until the cluster has been connected for 5 s ("unhealthy
    // cluster"): flows must retry that kind, and so does this test.
    const res = await waitFor('member add', async () => {
      try {
        return await etcd.memberAdd('etcd-d', [joined.peerUrl], { learner: true });
      } catch (err) {
        if (err instanceof EtcdError && err.kind === 'unhealthy-cluster') return undefined;
        throw err;
      }
    }, { timeoutMs: 15_000, intervalMs: 500 });
    added.id = res.member.id;
    expect(res.member.isLearner).toBe(true);
    cluster.join('etcd-d', cluster.initialCluster());
    // Only "not in sync yet" may be retried; any other error (e.g. etcdctl 3.4 panicking in
    // its JSON printer for promote) must fail this test, not be swallowed by the retry loop.
    const unexpected: unknown[] = [];
    const promoted = await waitFor('learner promotion', async () => {
      try {
        await etcd.memberPromote(added.id!);
        return true;
      } catch (err) {
        if (err instanceof EtcdError && err.kind === 'learner-not-in-sync') return undefined;
        unexpected.push(err);
        return undefined;
      }
    }, { timeoutMs: 20_000, intervalMs: 200 });
    expect(unexpected).toEqual([]);
    expect(promoted).toBe(true);
    const list = await etcd.memberList();
    expect(list.members.find((m) => m.id === added.id)).toMatchObject({ name: 'etcd-d', isLearner: false, started: true });
    await etcd.memberRemove(added.id);
    cluster.kill('etcd-d');
    expect((await etcd.memberList()).members.map((m) => m.id)).not.toContain(added.id);
  });

  it('moves a member to a new peer URL with member update, keeping its ID and data', async () => {
    await new EtcdClient(runner, { endpoints: cluster.endpoints, tls: cluster.tls }).memberList();
    execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.endpoints.join(',')}`, 'put', 'before', 'update'], { env: { PATH: process.env.PATH } });
    const list = await etcd.memberList();
    const c = list.members.find((m) => m.name === 'etcd-c')!;
    await cluster.stop('etcd-c');
    const others = new EtcdClient(runner, { endpoints: [cluster.member('etcd-a').clientUrl, cluster.member('etcd-b').clientUrl], tls: cluster.tls });
    const newUrl = await cluster.movePeerPort('etcd-c');
    await others.memberUpdate(c.id, [newUrl]);
    cluster.start('etcd-c');
    await cluster.waitHealthy(['etcd-c']);
    const after = await etcd.memberList();
    expect(after.members.find((m) => m.name === 'etcd-c')).toMatchObject({ id: c.id, peerUrls: [newUrl] });
    // Peers really reach it on the new URL: its raft index catches up with the leader's.
    await waitFor('etcd-c to catch up', async () => {
      const st = await etcd.endpointStatus({ cluster: true });
      const idx = st.statuses.map((s) => s.raftAppliedIndex ?? s.raftIndex);
      return st.statuses.length === 3 && Math.max(...idx) - Math.min(...idx) <= 1 ? true : undefined;
    });
    const got = execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.member('etcd-c').clientUrl}`, 'get', 'before', '--print-value-only'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(got.trim()).toBe('update');
  });

  it('reports an unreachable member and, after quorum is lost, no leader', async () => {
    cluster.kill('etcd-b');
    const partial = await etcd.endpointStatus({ cluster: true });
    expect(partial.statuses).toHaveLength(2);
    expect(partial.unreachable.map((u) => u.endpoint)).toEqual([cluster.member('etcd-b').clientUrl]);
    const health = await etcd.endpointHealth({ cluster: false });
    expect(health.filter((h) => !h.healthy).map((h) => h.endpoint)).toEqual([cluster.member('etcd-b').clientUrl]);

    cluster.kill('etcd-c');
    const survivor = etcd.withEndpoints([cluster.member('etcd-a').clientUrl]);
    const status = await waitFor('survivor to notice it has no leader', async () => {
      const r = await survivor.endpointStatus({ cluster: false });
      const s = r.statuses[0];
      return s && hasNoLeader(s) ? s : undefined;
    }, { timeoutMs: 20_000, intervalMs: 250 });
    expect(status.leader).toBeNull();
    await expect(survivor.withEndpoints([cluster.member('etcd-a').clientUrl]).memberAdd('etcd-x', ['http://127.0.0.1:1'], { learner: true }))
      .rejects.toBeInstanceOf(EtcdError);
  });

  it('saves, checks and restores a snapshot with the detected tool; lists alarms; defrags', async () => {
    execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.endpoints.join(',')}`, 'put', 'snap-key', 'v'], { env: { PATH: process.env.PATH } });
    const file = join(cluster.dir, 'snap.db');
    await etcd.withEndpoints([cluster.member('etcd-b').clientUrl]).snapshotSave(file);
    const tool = await SnapshotTool.detect(runner);
    expect(tool.bin).toBe(execFileSync('sh', ['-c', 'command -v etcdutl >/dev/null && echo etcdutl || echo etcdctl'], { encoding: 'utf8' }).trim());
    const st = await tool.status(file);
    expect(st.revision).toBeGreaterThanOrEqual(2);
    expect(st.totalKeys).toBeGreaterThan(0);
    const dataDir = join(cluster.dir, 'restored');
    await tool.restore(file, { name: 'r', dataDir, token: 'restore-1', initialCluster: [{ name: 'r', peerUrls: ['http://127.0.0.1:1'] }], advertisePeerUrls: ['http://127.0.0.1:1'] });
    expect(execFileSync('ls', [join(dataDir, 'member')], { encoding: 'utf8' })).toMatch(/snap/);
    expect(await etcd.alarmList()).toEqual([]);
    await expect(etcd.withEndpoints([cluster.member('etcd-a').clientUrl]).defrag()).resolves.toBeUndefined();
  });

  it('refuses to run a snapshot save against a missing endpoint with a classified error', async () => {
    const dead = new EtcdClient(runner, { endpoints: ['http://127.0.0.1:1'], dialTimeout: '500ms', commandTimeout: '1s' });
    await expect(dead.snapshotSave(join(cluster.dir, 'x.db'))).rejects.toMatchObject({ name: 'EtcdError', kind: 'unreachable' });
  });
});
