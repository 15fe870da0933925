/**
 * `adopt` over in-memory ports and a stateful fake host (test/support/fake-cloud.ts), without moto
 * or etcd: a hand-built cluster (members named after hosts) is mapped by peer URL, and each slot's
 * writes land in order — marker, member ID in it, the state table's record, the boot guard — then
 * the formation record; a fresh read verifies it, and a second run writes nothing. A plan that no
 * longer matches the cluster under the lock writes nothing at all.
 */
import { adoptCluster, AdoptRefused, planAdoption } from '../../lib/flows/adopt';
import type { HostAnswer } from '../../lib/host/commands';
import { fakeFlowDeps } from '../support/fake-cloud';
import { fakeHosts, type FakeWorld, healthyWorld, hexId, member } from '../support/fake-world';

const HOSTS = ['a', 'b', 'c'];
type Marker = NonNullable<HostAnswer<'volume-inspect'>['marker']>;

/** The healthy world with instance and volume IDs as AWS writes them (adopt checks them before any host command). */
function withAwsIds(): FakeWorld {
  const text = JSON.stringify({ ...healthyWorld(), backups: [] }).replace(/"(i|vol)-([abc])"/g, '"$1-0000000$2"');
  return JSON.parse(text) as FakeWorld;
}
const I = (h: string) => `i-0000000${h}`;
const V = (h: string) => `vol-0000000${h}`;

/** The three masters as a hand-built cluster left them: etcd on the volume, no marker, no guard. */
function handBuilt() {
  const w = withAwsIds();
  w.etcd.members = HOSTS.map((h) => member(h, `ip-10-0-0-${h}.ec2.internal`));
  const marker: Record<string, Marker | null> = Object.fromEntries(HOSTS.map((h) => [V(h), null]));
  const guard: Record<string, 'full' | 'unit' | 'none'> = Object.fromEntries(HOSTS.map((h) => [I(h), 'none']));
  const hosts = fakeHosts({
    'member-status': (i) => ({
      running: true, healthy: true, pid: 7, peerUrl: `https://${i.slice(-1)}:2380`, clientUrl: `https://${i.slice(-1)}:2379`, hasData: true,
      etcdVersion: '3.5.16', serverVersion: '3.5.16', clusterVersion: '3.5.0', configPending: false, stopped: false, guard: guard[i]!,
    }),
    'volume-inspect': (_i, c) => ({
      result: 'inspected', volumeId: c.volumeId, device: '/dev/nvme1n1', mountedDevice: '/dev/nvme1n1', onVolume: true, mountPoint: '/var/lib/etcd',
      dataDir: '/var/lib/etcd/data', hasData: true, dbOpenByEtcd: true, marker: marker[c.volumeId] ?? null,
    }),
    'volume-adopt': (_i, c) => {
      marker[c.volumeId] = { cluster: c.cluster, member: c.member, volume: c.volumeId, memberId: '' };
      return { result: 'mounted', volumeId: c.volumeId, device: '/dev/nvme1n1', mountPoint: '/var/lib/etcd', dataDir: '/var/lib/etcd/data', formatted: false, hasData: true, memberId: null };
    },
    'volume-record-member-id': (_i, c) => {
      marker[c.volumeId] = { ...marker[c.volumeId]!, memberId: c.memberId };
      return { result: 'recorded', volumeId: c.volumeId, memberId: c.memberId };
    },
    'member-guard': (i) => ({ result: 'installed', guard: (guard[i] = 'unit') }),
  });
  const f = fakeFlowDeps(w, hosts);
  return { ...f, w, hosts, marker, guard };
}

describe('adopt over fakes', () => {
  it('a hand-built cluster: mapped by peer URL, each slot written in order (marker, member ID, record, guard), formation recorded, verified; a second run writes nothing', async () => {
    const t = handBuilt();
    const plan = await planAdoption(t.deps, 'prod');
    expect(plan.refusals).toEqual([]);
    expect(plan.slots.map((s) => [s.slot, s.etcdName, s.action])).toEqual(HOSTS.map((h) => [`etcd-${h}`, `ip-10-0-0-${h}.ec2.internal`, 'adopt']));
    const out = await adoptCluster(t.deps, 'prod', plan);
    expect(out.result).toBe('adopted');
    // Per slot, in order; nothing else run on a host.
    expect(t.hosts.calls.filter((c) => c.instanceId === I('b') && c.command.kind !== 'member-status' && c.command.kind !== 'volume-inspect').map((c) => c.command.kind))
      .toEqual(['volume-adopt', 'volume-record-member-id', 'member-guard']);
    expect(t.marker[V('b')]).toEqual({ cluster: 'prod', member: 'etcd-b', volume: V('b'), memberId: hexId('b') });
    expect(t.memberIds.ids).toEqual({ 'etcd-a': hexId('a'), 'etcd-b': hexId('b'), 'etcd-c': hexId('c') });
    expect(t.formation.record()).toMatchObject({ state: 'formed', how: 'adopt', clusterId: hexId('1') });
    expect(Object.values(t.guard)).toEqual(['unit', 'unit', 'unit']);

    const calls = t.hosts.calls.length;
    const again = await adoptCluster(t.deps, 'prod', await planAdoption(t.deps, 'prod'));
    expect(again).toMatchObject({ result: 'unchanged', wrote: [] });
    expect(t.hosts.calls.slice(calls).every((c) => c.command.kind === 'member-status' || c.command.kind === 'volume-inspect')).toBe(true);
  });

  it('the cluster changed between the plan shown and the lock (a member\'s peer URL moved): the re-read under the lock refuses, nothing written anywhere', async () => {
    const t = handBuilt();
    const plan = await planAdoption(t.deps, 'prod');
    t.w.etcd.members = t.w.etcd.members!.map((m) => (m.name.includes('-c.') ? { ...m, peerUrls: ['https://c2:2380'] } : m));
    const err = await adoptCluster(t.deps, 'prod', plan).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdoptRefused);
    // Re-read under the lock, the new plan refuses (etcd-c's master advertises a peer URL no member has; that member maps to no slot).
    expect((err as AdoptRefused).refusals.map((r) => r.code).sort()).toEqual(['peer-url', 'stray']);
    expect(t.hosts.calls.filter((c) => !['member-status', 'volume-inspect'].includes(c.command.kind))).toEqual([]);
    expect(t.memberIds.ids).toEqual({});
    expect(t.formation.record()).toBeNull();
  });
});
