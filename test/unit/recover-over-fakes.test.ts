/**
 * The quorum-loss recovery read over in-memory ports and fake hosts: what each master is asked,
 * each slot's chance, and the verdict the reconciler acts on — without moto or etcd.
 */
import { DEFAULT_RECONCILE, planReconcile } from '../../lib/domain/reconcile';
import { DEFAULT_RECOVERY, type RecoverySettings } from '../../lib/domain/recovery';
import { readWorld } from '../../lib/flows/reconcile';
import type { RestoreJournal } from '../../lib/aws/restore-journal';
import { type FakeWorld, fakePorts, fixedClock, healthyWorld, hostReport, NOW, status } from '../support/fake-world';

/** Two masters replaced without quorum (awaiting DR on i-a2/i-b2), etcd-c alone and leaderless. */
function twoLost(hasData: boolean): FakeWorld {
  const w = healthyWorld();
  w.slots[0] = { ...w.slots[0]!, instanceId: 'i-a2', instances: [{ instanceId: 'i-a2', lifecycleState: 'InService' }] };
  w.slots[1] = { ...w.slots[1]!, instanceId: 'i-b2', instances: [{ instanceId: 'i-b2', lifecycleState: 'InService' }] };
  w.etcd = { ...w.etcd, via: { member: 'etcd-c', instanceId: 'i-c', clientUrl: 'https://c:2379', peerUrl: 'https://c:2380' }, membersFrom: 'local',
    status: { statuses: [status('c', null, { revision: 4321 })], unreachable: [{ endpoint: 'https://a:2379', error: 'connection refused' }, { endpoint: 'https://b:2379', error: 'context deadline exceeded' }] } };
  w.awaitingDr = { 'etcd-a': { instanceId: 'i-a2', since: NOW - 60_000, hasData }, 'etcd-b': { instanceId: 'i-b2', since: NOW - 60_000, hasData } };
  return w;
}

function read(w: FakeWorld, o: { hasData: boolean; settings?: Partial<RecoverySettings>; journal?: RestoreJournal; agents?: string[]; probed?: number }) {
  // The replaced masters say etcd is stopped there, on their data (revision 4000 read offline) or on a blank volume.
  w.hosts = { 'i-c': hostReport('c', { running: true }) };
  for (const [id, h] of [['i-a2', 'a'], ['i-b2', 'b']] as const) if ((o.agents ?? ['i-a2', 'i-b2']).includes(id)) w.hosts[id] = hostReport(h, { hasData: o.hasData, revision: 4000 });
  if (o.probed) w.highestRevision = o.probed;
  const observe = fakePorts(w);
  const deps = {
    observe, clock: fixedClock(),
    recovery: { read: { observe, clock: fixedClock(), ...(o.journal ? { journal: o.journal } : {}) }, settings: () => ({ ...DEFAULT_RECOVERY, mode: 'automatic' as const, waitSec: 0, ...o.settings }) },
  };
  return { asked: observe.asked, world: readWorld(deps, 'prod') };
}

describe('quorum-loss recovery over fakes', () => {
  it('a quorate cluster: no master is asked anything', async () => {
    const { asked, world } = read(healthyWorld(), { hasData: true });
    expect((await world).recovery?.verdict.kind).toBe('none');
    expect(asked).toEqual([]);
  });

  it('two replaced masters with their data: quorum lost on the hosts\' word, both started on their own data (revision read offline)', async () => {
    const { asked, world } = read(twoLost(true), { hasData: true });
    const w = await world;
    expect(w.recovery?.verdict).toMatchObject({ kind: 'start', members: [{ member: 'etcd-a', instanceId: 'i-a2', revision: 4000 }, { member: 'etcd-b', instanceId: 'i-b2', revision: 4000 }] });
    expect(asked.map((c) => c).sort((x, y) => x.instanceId.localeCompare(y.instanceId))).toEqual([{ instanceId: 'i-a2', offlineRevision: true }, { instanceId: 'i-b2', offlineRevision: true }]);
    // The survivor answered for itself: its master is not asked.
    expect(planReconcile(w, DEFAULT_RECONCILE).actions.map((a) => a.kind)).toEqual(['start-member', 'start-member']);
  });

  it('two blank volumes: a restore from a copy of the survivor, taken at the URL it answered on', async () => {
    const w = await read(twoLost(false), { hasData: false }).world;
    expect(w.recovery?.verdict).toMatchObject({ kind: 'restore', source: { kind: 'member', member: 'etcd-c', instanceId: 'i-c', revision: 4321 } });
    expect(planReconcile(w, DEFAULT_RECONCILE).actions).toEqual([expect.objectContaining({ kind: 'recover', clientUrl: 'https://c:2379' })]);
  });

  it('the revisions lost count from the highest revision the probe saw (every minute), beyond what the survivor holds', async () => {
    const w = await read(twoLost(false), { hasData: false, probed: 4400 }).world;
    expect(w.recovery?.verdict).toMatchObject({ kind: 'restore', highest: 4400, revisionsLost: 79 });
    expect(planReconcile(w, DEFAULT_RECONCILE).seen['revision#high']).toBe(4400);
  });

  it('masters whose agents do not answer and members that time out: "cannot see", never a restore', async () => {
    const world = twoLost(false);
    world.etcd.status.unreachable = world.etcd.status.unreachable.map((u) => ({ ...u, error: 'context deadline exceeded' }));
    world.awaitingDr = {};
    const w = await read(world, { hasData: false, agents: [] }).world;
    expect(w.recovery?.verdict.kind).toBe('cannot-see');
    expect(planReconcile(w, DEFAULT_RECONCILE).actions.filter((a) => a.kind === 'recover' || a.kind === 'start-member')).toEqual([]);
  });

  it('an interrupted restore (its journal open) is finished first, whatever the slots say', async () => {
    const journal = { get: () => Promise.resolve({ token: 'prod-recover-1', snapshotKey: 'etcd-backups/prod/x.db.zst', startedAt: NOW }) } as unknown as RestoreJournal;
    const w = await read(twoLost(true), { hasData: true, journal }).world;
    expect(w.recovery?.verdict).toMatchObject({ kind: 'unfinished', token: 'prod-recover-1' });
  });
});
