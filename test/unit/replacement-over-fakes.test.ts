/**
 * The replacement over in-memory ports and a fake host (test/support/fake-cloud.ts), without moto
 * or etcd: the branches that end before a membership change — a predecessor that still holds the
 * volume, a cluster without quorum (the master comes in awaiting DR), one Quorum Keeper cannot
 * see (ABANDON, never "restore"), and a late event for an instance not waiting to come in.
 */
import type { FormationRecord } from '../../lib/aws/formation';
import { planReplacement, replaceMaster } from '../../lib/flows/replacement';
import type { HostAnswer } from '../../lib/host/commands';
import { fakeFlowDeps } from '../support/fake-cloud';
import { fakeHosts, type FakeWorld, healthyWorld, type HostScript, NOW } from '../support/fake-world';

const SLOT = { cluster: 'prod', member: 'etcd-b', asg: 'prod-etcd-b', availabilityZones: ['us-east-1b'] };
const HOOK = { asg: 'prod-etcd-b', hook: 'launch', token: 't-1', instanceId: 'i-b2' };
const FORMED = { cluster: 'prod', state: 'formed', seed: 'etcd-a', instanceId: 'i-a', volumeId: 'vol-a', clusterId: '1', how: 'bootstrap', at: NOW - 86_400_000 } as FormationRecord;

const memberStatus = (i: string, o: { running: boolean; healthy?: boolean; stopped?: boolean }): HostAnswer<'member-status'> => ({
  running: o.running, healthy: o.healthy ?? false, stopped: o.stopped ?? !o.running, pid: o.running ? 42 : null, peerUrl: `https://${i}:2380`, clientUrl: `https://${i}:2379`,
  hasData: true, etcdVersion: '3.5.16', serverVersion: null, clusterVersion: null, configPending: false, guard: 'full',
});

/**
 * etcd-b's master was terminated (i-b, gone from the group, its volume still attached) and i-b2
 * waits for its launch hook. No etcd member answers: `etcdOn` says where etcd still runs.
 */
function replacingB(): FakeWorld {
  const w = healthyWorld();
  w.slots[1]!.instances = [{ instanceId: 'i-b2', lifecycleState: 'Pending:Wait' }];
  w.slots[1]!.instanceId = null;
  w.instances['i-b'] = { state: 'terminated', launchedAt: NOW - 86_400_000 };
  w.instances['i-b2'] = { state: 'running', launchedAt: NOW - 60_000 };
  w.etcd = { ...w.etcd, via: null, members: null, clusterId: null, membersFrom: null, status: { statuses: [], unreachable: [] } };
  return w;
}

function replace(w: FakeWorld, etcdOn: Record<string, { running: boolean; stopped?: boolean }>, script: HostScript = {}) {
  // What the world's hosts say (the observation's hosts part) and what they answer to commands agree.
  for (const [i, st] of Object.entries(etcdOn)) w.hosts[i] = { ...memberStatus(i, st), revision: null };
  const hosts = fakeHosts({
    'member-status': (i) => memberStatus(i, etcdOn[i] ?? { running: false }),
    'member-urls': (i) => ({ peerUrl: `https://${i}:2380`, clientUrl: `https://${i}:2379`, hostIp: null, etcdVersion: '3.5.16' }),
    'volume-mount': (_i, c) => ({ result: 'mounted', volumeId: c.volumeId, device: '/dev/xvdf', mountPoint: '/var/lib/etcd', dataDir: '/var/lib/etcd/data', formatted: false, hasData: true, memberId: 'b' }),
    ...script,
  });
  const f = fakeFlowDeps(w, hosts, { formation: FORMED });
  return { ...f, hosts, out: replaceMaster(f.deps, { slot: SLOT, instanceId: 'i-b2', hook: HOOK }) };
}

const volumeB = (w: FakeWorld) => w.volumes.find((v) => v.volumeId === 'vol-b')!;

describe('the replacement over fakes: before any membership change', () => {
  it('no quorum (the other masters say etcd is stopped): the volume comes over and is mounted, etcd is NOT started, the master awaits DR, hook CONTINUE', async () => {
    const w = replacingB();
    const { out, cloud, hosts, awaitingDr, alerter } = replace(w, { 'i-a': { running: false }, 'i-c': { running: false }, 'i-b2': { running: false } });
    expect(await out).toMatchObject({ result: 'awaiting-dr', reason: expect.stringMatching(/has lost quorum/) as unknown });
    expect(cloud.changes).toEqual(['detach vol-b i-b (force)', 'attach vol-b i-b2', 'complete i-b2 CONTINUE']);
    expect(volumeB(w).attachedTo).toBe('i-b2');
    expect(hosts.calls.filter((c) => c.instanceId === 'i-b2').map((c) => c.command.kind).sort()).toEqual(['member-urls', 'volume-mount']);
    expect(hosts.calls.some((c) => c.command.kind === 'member-start')).toBe(false);
    expect(awaitingDr.records.get('prod/etcd-b')).toMatchObject({ instanceId: 'i-b2', hasData: true });
    expect(alerter.alerts.map((a) => [a.severity, a.dedupeKey])).toEqual([['critical', 'prod/etcd-b/awaiting-dr/i-b2']]);
  });

  it('cannot see (etcd-c runs but answers nobody): ABANDON with a "do NOT restore" alert — nothing recorded as awaiting DR', async () => {
    const w = replacingB();
    const { out, cloud, awaitingDr, alerter } = replace(w, { 'i-a': { running: false }, 'i-c': { running: true }, 'i-b2': { running: false } });
    expect(await out).toMatchObject({ result: 'abandoned', reason: expect.stringMatching(/^CANNOT SEE whether prod has quorum/) as unknown });
    expect(cloud.completed.map((c) => c.result)).toEqual(['ABANDON']);
    expect(awaitingDr.records.size).toBe(0);
    expect(alerter.alerts).toHaveLength(1);
    expect(alerter.alerts[0]).toMatchObject({ dedupeKey: 'prod/etcd-b/cannot-see', action: expect.stringMatching(/do NOT restore/) as unknown });
  });

  it('the predecessor still runs (it left the group without terminating): never force-detached — ABANDON, the volume stays where it is', async () => {
    const w = replacingB();
    w.instances['i-b'] = { state: 'running', launchedAt: NOW - 86_400_000 };
    const { out, cloud, hosts } = replace(w, {});
    expect(await out).toMatchObject({ result: 'abandoned', step: 'predecessor', reason: expect.stringMatching(/still attached to i-b, which is running \(none\); not detaching a running master/) as unknown });
    expect(cloud.changes).toEqual(['complete i-b2 ABANDON']);
    expect(volumeB(w).attachedTo).toBe('i-b');
    expect(hosts.calls).toEqual([]);
  });

  it('the dry run decides as the run does (one decision per step): each step it would take, ending where the run would refuse — and changes nothing', async () => {
    const w = replacingB();
    const free = fakeFlowDeps(w, fakeHosts({}), { formation: FORMED });
    const plan = await planReplacement(free.deps, { slot: SLOT, instanceId: 'i-b2', hook: HOOK });
    expect(plan.slice(0, 4)).toEqual([
      { step: 'instance', action: 'i-b2 running in us-east-1b' },
      { step: 'volume', action: 'use vol-b (in-use on i-b)' },
      { step: 'predecessor', action: 'force-detach vol-b from i-b (terminated)' },
      { step: 'attach', action: 'attach vol-b to i-b2 as /dev/xvdf, wait until attached' },
    ]);
    w.instances['i-b'] = { state: 'running', launchedAt: NOW };
    const refused = await planReplacement(free.deps, { slot: SLOT, instanceId: 'i-b2', hook: HOOK });
    expect(refused.map((p) => p.step)).toEqual(['instance', 'volume', 'predecessor']);
    const run = await replace(w, {}).out;
    expect(refused.at(-1)!.action).toBe(`stop: ${run.reason}; ABANDON and alert`);
    expect(free.cloud.changes).toEqual([]);
  });

  it('a late launch event for an instance already retiring: ignored at once — no lock, no volume, no hook completed', async () => {
    const w = replacingB();
    w.slots[1]!.instances = [{ instanceId: 'i-b2', lifecycleState: 'Terminating:Wait' }];
    const { out, cloud, lock } = replace(w, {});
    expect(await out).toMatchObject({ result: 'ignored', reason: 'i-b2 is Terminating:Wait in prod-etcd-b, not Pending:Wait: nothing to bring in' });
    expect(cloud.changes).toEqual([]);
    expect(lock.owners.size).toBe(0);
  });
});
