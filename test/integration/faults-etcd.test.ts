/**
 * Fault matrix (issue 8), etcd's own faults: a member frozen with SIGSTOP (a slow or
 * partitioned peer: its sockets stay open and silent) and the NOSPACE alarm (raised through
 * etcd's own Maintenance API, as the backend quota would). Each case asserts the real outcome:
 * no wrong member removed, no volume reformatted, the cluster converges or an alert says why.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { listBackups } from '../../lib/aws/backups';
import { DEFAULT_SOURCE_MAX_LAG } from '../../lib/domain/backup-source';
import { backupCluster } from '../../lib/flows/backup';
import { EtcdError } from '../../lib/etcd';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { receivedAlerts, sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps } from '../../sandbox/control';
import { waitFor } from '../../sandbox/ports';
import { hostOk } from '../../sandbox/cluster';
import { PeerThrottle } from '../../sandbox/peer-throttle';
import { HOST_PKI, SandboxPki } from '../../sandbox/pki';
import { countKeys, killMaster, putKeys, TERMINATE_HOOK } from '../../sandbox/scenario';
import { freshClusterPerTest } from '../support/scenario-suite';
import { etcdFetch, harnessEtcd } from '../../sandbox/etcd-http';

jest.setTimeout(240_000);

describe('fault matrix: etcd members frozen or out of space', () => {
  const t = freshClusterPerTest({ keys: 300, backups: true });
  const summary: string[] = [];
  afterAll(() => {
    if (summary.length) console.log(`fault matrix (etcd):\n| case | outcome |\n|---|---|\n${summary.join('\n')}`);
  });
  const etcd = () => harnessEtcd(t.cluster.members.map((m) => m.clientUrl));
  const slotOf = async (asg: string): Promise<MasterSlot> => {
    const s = await findMasterSlot(t.c.asg, asg, { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' });
    if (s.kind !== 'master') throw new Error(s.reason);
    return s.slot;
  };
  const hookOf = (x: Awaited<ReturnType<typeof killMaster>>) => ({
    asg: x.event.detail.AutoScalingGroupName, hook: x.event.detail.LifecycleHookName, token: x.event.detail.LifecycleActionToken, instanceId: x.instanceId,
  });
  const leaderOf = async () => (await etcd().endpointStatus({ cluster: true })).statuses.find((s) => s.isLeader);

  it('a frozen follower (SIGSTOP) is never used as the backup source, and the backup still lands', async () => {
    const leaderUrl = (await leaderOf())!.endpoint;
    const frozen = t.cluster.members.find((m) => m.clientUrl !== leaderUrl)!;
    t.sandbox.host(frozen.instanceId).pauseEtcd();
    try {
      const out = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', sandboxBackupSettings(t.backups));
      summary.push(`| ${frozen.name} frozen (SIGSTOP), scheduled backup | ${out.result} from ${out.member} (${out.role}) |`);
      expect(out.result).toBe('uploaded');
      expect(out.member).not.toBe(frozen.name);
      expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
      expect(await receivedAlerts(t.ctl)).toEqual([]);
    } finally {
      t.sandbox.host(frozen.instanceId).resumeEtcd();
    }
  });

  it('a follower that follows the leader but lags far behind it (a slow raft link) is never the backup source: with the other follower retiring, the leader is', async () => {
    const leaderStatus = (await leaderOf())!;
    const list = (await etcd().memberList()).members;
    const leader = t.cluster.members.find((m) => m.clientUrl === leaderStatus.endpoint)!;
    const [lagging, retiring] = t.cluster.members.filter((m) => m !== leader) as [typeof leader, typeof leader];
    const idOf = (m: typeof leader) => list.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
    const w = t.writer.start('lagging-follower');
    // The leader's peer URL moves behind a proxy that slows its log entries to `lagging` only. A
    // follower dials its leader and keeps the stream it has, so `lagging` rejoins (removed, its
    // data wiped, added again) to dial the leader where the member list now says it is — a member
    // that "just rejoined", as in the issue.
    const target = new URL(leader.peerUrl);
    const root = t.sandbox.host(leader.instanceId).root;
    const peerTls = { cacert: join(root, HOST_PKI.cacert), cert: join(root, HOST_PKI.peerCert), key: join(root, HOST_PKI.peerKey) };
    const link = await PeerThrottle.start({
      target: { host: target.hostname, port: Number(target.port) }, slowFor: '0', bytesPerSec: 2000, ...(target.protocol === 'https:' ? { tls: peerTls } : {}),
    });
    try {
      await etcd().memberUpdate(idOf(leader), [link.url]);
      await hostOk(t.c, lagging.instanceId, 'etcd-member.sh', ['stop']);
      rmSync(join(t.sandbox.host(lagging.instanceId).root, 'var/lib/etcd/data'), { recursive: true, force: true });
      await etcd().memberRemove(idOf(lagging));
      // etcd adds a voter only once the members it has were connected for a while (strict reconfig).
      const added = await waitFor('member add accepted', () => etcd().memberAdd(lagging.name, [lagging.peerUrl], { learner: false }), { timeoutMs: 30_000, intervalMs: 1000 });
      link.slowFor(added.member.id);
      const initial = t.cluster.members.map((m) => `${m.name}=${m === leader ? link.url : m.peerUrl}`).join(',');
      await hostOk(t.c, lagging.instanceId, 'etcd-member.sh', ['start', '--name', lagging.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing']);
      const lag = async () => {
        const st = (await etcd().endpointStatus({ cluster: true })).statuses;
        const l = st.find((x) => x.isLeader);
        const f = st.find((x) => x.endpoint === lagging.clientUrl);
        if (!l || !f) throw new Error(`no leader or no status of ${lagging.name}: ${JSON.stringify(st.map((x) => [x.endpoint, x.leader, x.raftIndex]))}`);
        return { lag: l.raftIndex - f.raftIndex, follows: f.leader === l.memberId };
      };
      // Serving first (a joining member answers clients once it has applied its own join), its
      // log entries coming through the proxy; then it falls behind.
      await waitFor('the rejoined member serving', async () => ((await lag()).follows ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
      expect(link.slowStreams).toBeGreaterThan(0);
      link.slowDown();
      await putKeys(leader.clientUrl, '/registry/lag/', 3000);
      let last = { lag: 0, follows: false };
      // A read may miss etcdctl's 2 s deadline while 3,000 keys queue behind the slow link (3.5's
      // member list, the first half of `endpoint status --cluster`, is linearizable): asked again.
      const lagNow = () => lag().catch((err: unknown) => {
        if (err instanceof EtcdError && err.kind === 'timeout') return undefined;
        throw err;
      });
      const seen = await waitFor('the follower far behind', async () => { last = (await lagNow()) ?? last; return last.lag > DEFAULT_SOURCE_MAX_LAG ? last : undefined; }, { timeoutMs: 30_000, intervalMs: 500 })
        .catch((err: unknown) => { throw new Error(`${String(err)}; last ${JSON.stringify(last)}; ${link.slowedBytes} bytes through the slow stream`); });
      expect(seen.follows).toBe(true);
      // The other follower's master is retiring (Terminating:Wait): not a source either.
      t.sandbox.lifecycle.begin({ asg: retiring.asg, hook: TERMINATE_HOOK, instanceId: retiring.instanceId, transition: 'autoscaling:EC2_INSTANCE_TERMINATING' });
      const out = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', sandboxBackupSettings(t.backups));
      const after = await waitFor('a status read after the backup', lagNow, { timeoutMs: 20_000, intervalMs: 500 });
      summary.push(`| ${lagging.name} follows the leader ${seen.lag} entries behind (slow raft link), ${retiring.name} retiring; scheduled backup | ${out.result} from ${out.member} (${out.role}); ${lagging.name} still ${after.lag} behind |`);
      expect(out).toMatchObject({ result: 'uploaded', member: leader.name, role: 'leader' });
      expect(after.lag).toBeGreaterThan(DEFAULT_SOURCE_MAX_LAG); // it lagged throughout the backup
      link.release();
      await waitFor('the follower caught up', async () => (((await lagNow())?.lag ?? Infinity) < 50 ? true : undefined), { timeoutMs: 60_000, intervalMs: 500 });
      await etcd().memberUpdate(idOf(leader), [leader.peerUrl]);
      await t.writer.check(w, 'lagging follower');
      expect(await receivedAlerts(t.ctl)).toEqual([]);
    } finally {
      await link.stop();
    }
  });

  it('a master dies while another member is frozen: no quorum, so no membership change; it comes in awaiting DR with one alert; once the peer thaws, the repair brings it in with its data', async () => {
    const leaderUrl = (await leaderOf())!.endpoint;
    const [dead, frozen] = t.cluster.members.filter((m) => m.clientUrl !== leaderUrl);
    const before = (await etcd().memberList()).members;
    const w = t.writer.start('frozen-peer');
    t.sandbox.host(frozen!.instanceId).pauseEtcd();
    const first = await killMaster(t.sandbox, t.c, dead!);
    const slot = await slotOf(dead!.asg);
    const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot, instanceId: first.instanceId, hook: hookOf(first) });
    const alerts = await receivedAlerts(t.ctl);
    t.sandbox.host(frozen!.instanceId).resumeEtcd();
    summary.push(`| ${dead!.name} dies while ${frozen!.name} is frozen | ${out.result} at ${out.step}, ${alerts.length} alert |`);
    expect(out).toMatchObject({ result: 'awaiting-dr' });
    expect(['peer', 'membership']).toContain(out.step);
    expect(alerts).toHaveLength(1);
    expect(alerts[0]).toMatch(/no etcd quorum/i);
    expect(t.sandbox.lifecycle.results(first.instanceId)).toEqual(['CONTINUE']);
    expect(t.sandbox.host(first.instanceId).etcdPid()).toBeNull();
    // Nobody was removed or re-pointed, and the dead member's volume keeps its identity.
    await waitFor('a leader after the thaw', async () => ((await leaderOf()) ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    expect((await etcd().memberList()).members.map((m) => [m.id, m.peerUrls])).toEqual(before.map((m) => [m.id, m.peerUrls]));
    expect(readFileSync(join(t.sandbox.volumeDir(dead!.volumeId), '.quorum-keeper-volume'), 'utf8')).toMatch(/^cluster=prod\nmember=/);

    // Quorum is back: the reconciler's repair (the replacement flow without a hook) brings the
    // master that came in awaiting DR into the cluster, with its data, on the same instance.
    const again = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot, instanceId: first.instanceId, hook: null });
    summary.push(`| (after the thaw) repair of ${dead!.name} on the same instance | ${again.result} (${again.membership}) |`);
    expect(again).toEqual({ result: 'continued', membership: 'update' });
    const id = before.find((m) => m.name === dead!.name)!.id;
    expect((await etcd().memberList()).members.find((m) => m.name === dead!.name)).toMatchObject({ id, peerUrls: [t.sandbox.host(first.instanceId).peerUrl] });
    expect(await countKeys(t.sandbox.host(first.instanceId).clientUrl, '/registry/test/')).toBe(300);
    expect(t.sandbox.detachCalls.filter((d) => d.force)).toEqual([]);
    await t.writer.check(w, 'a master dies while a peer is frozen');
  });

  it('NOSPACE alarm: the backup is still taken (it is what a recovery needs), and a replacement still brings its master in', async () => {
    const leader = (await leaderOf())!;
    // The leader raises the alarm and is the master replaced (an election on top of NOSPACE).
    const a = t.cluster.members.find((m) => m.clientUrl === leader.endpoint)!;
    // Raise NOSPACE as etcd does when the backend quota is exceeded (Maintenance.Alarm ACTIVATE).
    const res = await etcdFetch(`${leader.endpoint}/v3/maintenance/alarm`, {
      method: 'POST', body: JSON.stringify({ action: 'ACTIVATE', memberID: BigInt(`0x${leader.memberId}`).toString(), alarm: 'NOSPACE' }),
    });
    expect(res.ok).toBe(true);
    const alarms = await etcd().alarmList();
    expect(alarms.map((x) => x.alarm)).toContain('NOSPACE');
    try {
      const put = await etcdFetch(`${leader.endpoint}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('/registry/nospace').toString('base64'), value: 'eA==' }) });
      expect(await put.text()).toMatch(/database space exceeded/);

      const backup = await backupCluster(sandboxBackupDeps(t.c, t.ctl, t.backups), 'prod', sandboxBackupSettings(t.backups));
      summary.push(`| NOSPACE alarm, scheduled backup | ${backup.result}${backup.failure ? `: ${backup.failure.message}` : ''} |`);
      expect(backup.result).toBe('uploaded');

      const id = (await etcd().memberList()).members.find((m) => m.name === a.name)!.id;
      const killed = await killMaster(t.sandbox, t.c, a);
      const out = await replaceMaster(sandboxFlowDeps(t.c, t.ctl), { slot: await slotOf(a.asg), instanceId: killed.instanceId, hook: hookOf(killed) });
      summary.push(`| NOSPACE alarm, a master replaced | ${out.result}${out.reason ? `: ${out.reason}` : ` (${out.membership})`} |`);
      expect(out).toEqual({ result: 'continued', membership: 'update' });
      expect((await etcd().memberList()).members.find((m) => m.name === a.name)).toMatchObject({ id, peerUrls: [t.sandbox.host(killed.instanceId).peerUrl] });
      expect(await countKeys(t.sandbox.host(killed.instanceId).clientUrl, '/registry/test/')).toBe(300);
      expect(await receivedAlerts(t.ctl)).toEqual([]);
    } finally {
      // Through any live member (the one that raised it may be the master just replaced).
      execFileSync('etcdctl', [`--endpoints=${t.cluster.members.map((m) => m.clientUrl).join(',')}`, ...SandboxPki.current().harnessEtcdctlFlags, 'alarm', 'disarm'], { env: { PATH: process.env.PATH ?? '' } });
    }
  });
});
