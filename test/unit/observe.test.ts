/** observeCluster (lib/observe): one reading, only the sources asked for, identity read once. */
import { observeCluster } from '../../lib/observe/observe';
import { fixedClock } from '../support/fake-world';

const CTX = { clock: fixedClock() };
import { fakePorts, healthyWorld, hexId, hostReport, member } from '../support/fake-world';

const STORE = { bucket: 'b', prefix: 'etcd-backups' };

describe('observeCluster', () => {
  it('reads only what it is asked for: etcd alone (the probe) costs the slots and one survey', async () => {
    const ports = fakePorts(healthyWorld());
    const v = await observeCluster(ports, 'prod', { etcd: { leases: ['kube-scheduler'] } }, CTX);
    expect(ports.reads).toEqual({ fleet: 1, etcd: 1 });
    expect(v.etcd.via?.member).toBe('etcd-a');
    expect(Object.keys(v).sort()).toEqual(['at', 'badGroups', 'cluster', 'etcd', 'slots']);
  });

  it('everything: each source read once, backups judged against the server time', async () => {
    const ports = fakePorts(healthyWorld());
    const v = await observeCluster(ports, 'prod', { volumes: true, targets: true, etcd: {}, claims: true, instances: true, backups: STORE, records: true }, CTX);
    expect(ports.reads).toEqual({ fleet: 1, volumes: 1, targets: 1, etcd: 1, instances: 1, backups: 1, memberIds: 1, held: 3, awaitingDr: 3, highestRevision: 1 });
    expect(v.volumes['etcd-b']).toEqual({ volumeId: 'vol-b', volumeState: 'in-use', attachmentState: 'attached', attachedTo: 'i-b' });
    expect(v.claims).toEqual({ 'etcd-a': { id: hexId('a'), basis: 'name' }, 'etcd-b': { id: hexId('b'), basis: 'name' }, 'etcd-c': { id: hexId('c'), basis: 'name' } });
    expect(v.backups).toMatchObject({ usable: [{ key: expect.stringContaining('etcd-b') as unknown }], futureDated: [] });
    expect(v.records).toEqual({ bySlot: { 'etcd-a': { held: null, awaitingDr: null }, 'etcd-b': { held: null, awaitingDr: null }, 'etcd-c': { held: null, awaitingDr: null } }, highestRevision: null });
  });

  it('identity: recorded IDs first, names next, and a master\'s peer URL asked only while a slot and a member are both unpaired', async () => {
    const w = healthyWorld();
    // kubeadm-style names: no slot is named like its member; etcd-a's ID is recorded.
    w.etcd.members = ['a', 'b', 'c'].map((h) => member(h, `ip-10-0-0-${h}`));
    w.memberIds = { 'etcd-a': hexId('a') };
    const ports = fakePorts(w);
    const v = await observeCluster(ports, 'prod', { claims: true }, CTX);
    expect(v.claims).toEqual({ 'etcd-a': { id: hexId('a'), basis: 'recorded' }, 'etcd-b': { id: hexId('b'), basis: 'peer-url' }, 'etcd-c': { id: hexId('c'), basis: 'peer-url' } });
    expect(ports.reads.peerUrl).toBe(2); // etcd-a's own peer URL came with the survey
    const named = fakePorts(healthyWorld());
    await observeCluster(named, 'prod', { claims: true }, CTX);
    expect(named.reads.peerUrl).toBeUndefined();
  });

  it('a source that fails is said, not guessed: an unlisted bucket, an unreadable state table; no state table is no records', async () => {
    const w = healthyWorld();
    w.backups = new Error('AccessDenied');
    const ports = fakePorts(w);
    ports.records!.held = () => Promise.reject(new Error('ProvisionedThroughputExceeded'));
    const v = await observeCluster(ports, 'prod', { backups: STORE, records: true }, CTX);
    expect(v.backups).toEqual({ error: 'backups could not be listed: AccessDenied' });
    expect(v.records).toEqual({ error: 'the state table could not be read: ProvisionedThroughputExceeded' });
    const bare = await observeCluster(fakePorts({ ...healthyWorld(), noStateTable: true }), 'prod', { records: true, backups: null }, CTX);
    expect(bare.records).toEqual({ bySlot: {}, highestRevision: null });
    expect(bare.backups).toBeNull();
  });

  it('the hosts\' word: `silent` asks only the masters whose member gave etcd no answer, `all` every live one; one that cannot be asked is said', async () => {
    const w = healthyWorld();
    // etcd-c's member does not answer; its slot also holds a retiring master.
    w.etcd.status = { statuses: w.etcd.status.statuses.slice(0, 2), unreachable: [{ endpoint: 'https://c:2379', error: 'context deadline exceeded' }] };
    w.slots[2]!.instances.push({ instanceId: 'i-c-old', lifecycleState: 'Terminating:Wait' }, { instanceId: 'i-c-gone', lifecycleState: 'Terminated' });
    w.hosts['i-c'] = hostReport('c', { revision: 77 });
    w.hosts['i-c-old'] = new Error('SSM command timed out');
    const ports = fakePorts(w);
    const silent = await observeCluster(ports, 'prod', { etcd: {}, claims: true, hosts: { of: 'silent', offlineRevision: true } }, CTX);
    expect(silent.hosts).toEqual({ 'i-c': { report: hostReport('c', { revision: 77 }) }, 'i-c-old': { unavailable: 'SSM command timed out' } });
    delete w.hosts['i-b']; // its SSM agent is offline
    const all = await observeCluster(fakePorts(w), 'prod', { hosts: { of: 'all' } }, CTX);
    expect(Object.keys(all.hosts).sort()).toEqual(['i-a', 'i-b', 'i-c', 'i-c-old']);
    expect(all.hosts['i-b']).toEqual({ unavailable: 'its SSM agent is not online' });
    expect(all.hosts['i-c']).toEqual({ report: hostReport('c', { revision: null }) }); // no offline revision unless asked
  });

  it('the highest revision a probe saw is part of the records', async () => {
    const v = await observeCluster(fakePorts({ ...healthyWorld(), highestRevision: 9001 }), 'prod', { records: true }, CTX);
    expect(v.records).toMatchObject({ highestRevision: 9001 });
  });

  it('etcd through the masters asked for only: a retiring master reads the cluster through its own member', async () => {
    const ports = fakePorts(healthyWorld());
    const elsewhere = await observeCluster(ports, 'prod', { etcd: { via: [{ instanceId: 'i-b', member: 'etcd-b' }] } }, CTX);
    expect(elsewhere.etcd.members).toBeNull(); // the fake's answering master is i-a
    const mine = await observeCluster(ports, 'prod', { etcd: { via: [{ instanceId: 'i-a', member: 'etcd-a' }] } }, CTX);
    expect(mine.etcd.members).toHaveLength(3);
  });
});
