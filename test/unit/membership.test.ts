import { canStopMember, clusterHealth, planMembership, quorumOf } from '../../lib/domain/membership';
import { memberIdFromHex, type Member, type EndpointStatus, type EndpointStatusReport } from '../../lib/etcd';

const id = (h: string) => memberIdFromHex(h);
const member = (h: string, name: string, peer: string, extra: Partial<Member> = {}): Member => ({
  id: id(h), name, peerUrls: [peer], clientUrls: name ? [peer.replace('2380', '2379')] : [], isLearner: false, started: name !== '', ...extra,
});
const status = (h: string, leader: string | null, extra: Partial<EndpointStatus> = {}): EndpointStatus => ({
  endpoint: `http://${h}:2379`, memberId: id(h), clusterId: id('1'), version: '3.4.23', dbSize: 1, dbSizeInUse: 1, leader: leader ? id(leader) : null,
  isLeader: leader === h, isLearner: false, raftIndex: 10, raftAppliedIndex: 10, raftTerm: 2, revision: 5, errors: [], ...extra,
});
const report = (...s: EndpointStatus[]): EndpointStatusReport => ({ statuses: s, unreachable: [] });

const A = member('a', 'etcd-a', 'http://10.0.1.5:2380');
const B = member('b', 'etcd-b', 'http://10.0.2.5:2380');
const C = member('c', 'etcd-c', 'http://10.0.3.5:2380');

describe('quorum math', () => {
  it.each([[1, 1], [2, 2], [3, 2], [4, 3], [5, 3]])('%i voters need %i', (n, q) => expect(quorumOf(n)).toBe(q));

  it('counts healthy voters that agree on a voting leader', () => {
    expect(clusterHealth([A, B, C], report(status('b', 'b'), status('c', 'b')))).toEqual({ voters: 3, quorum: 2, healthyVoters: 2, leader: id('b'), margin: 0 });
  });
  it('has no leader when members report none ("etcdserver: no leader")', () => {
    const h = clusterHealth([A, B, C], report(status('c', null, { errors: ['etcdserver: no leader'] })));
    expect(h).toMatchObject({ leader: null, healthyVoters: 0 });
  });
  it('ignores learners as voters and as leaders', () => {
    const L = member('d', 'etcd-d', 'http://10.0.4.5:2380', { isLearner: true });
    expect(clusterHealth([A, B, C, L], report(status('a', 'a'), status('b', 'a'), status('d', 'a'))).voters).toBe(3);
  });
});

describe('planMembership', () => {
  const NEW = 'http://10.0.1.9:2380';
  it('data survived, URL changed → member update of the same ID', () => {
    expect(planMembership([A, B, C], 'etcd-a', NEW, true)).toEqual({ kind: 'update', id: id('a'), from: ['http://10.0.1.5:2380'] });
  });
  it('already updated → nothing to do (second run)', () => {
    expect(planMembership([{ ...A, peerUrls: [NEW] }, B, C], 'etcd-a', NEW, true)).toEqual({ kind: 'in-place', id: id('a'), isLearner: false });
  });
  it('data gone → remove the old incarnation, add a learner', () => {
    expect(planMembership([A, B, C], 'etcd-a', NEW, false)).toEqual({ kind: 'replace', removeId: id('a') });
  });
  it('data gone, learner already added by an earlier run (unstarted, no name) → continue with it', () => {
    const learner = member('e', '', NEW, { isLearner: true });
    expect(planMembership([learner, B, C], 'etcd-a', NEW, false)).toEqual({ kind: 'in-place', id: id('e'), isLearner: true });
  });
  it('data gone and member already removed → add', () => {
    expect(planMembership([B, C], 'etcd-a', NEW, false)).toEqual({ kind: 'replace', removeId: null });
  });
  it('refuses when the volume has data but the member left the cluster (rejoining would need a wipe)', () => {
    expect(planMembership([B, C], 'etcd-a', NEW, true)).toMatchObject({ kind: 'refuse', reason: expect.stringMatching(/no longer in the cluster/) as unknown });
  });
  it('refuses when the new peer URL belongs to another member (volume claimed by the wrong member)', () => {
    expect(planMembership([A, B, C], 'etcd-a', 'http://10.0.2.5:2380', true)).toMatchObject({ kind: 'refuse' });
  });
});

describe('canStopMember (retirement safety)', () => {
  it('allows stopping one of three healthy members', () => {
    expect(canStopMember([A, B, C], report(status('a', 'a'), status('b', 'a'), status('c', 'a')), 'http://a:2379')).toMatchObject({ safe: true, othersHealthy: 2 });
  });
  it('refuses when another member is already down', () => {
    expect(canStopMember([A, B, C], report(status('a', 'a'), status('c', 'a')), 'http://a:2379')).toMatchObject({ safe: false, othersHealthy: 1 });
  });
  it('refuses while there is no leader (an election after a crash is not "safe")', () => {
    const r = report(status('a', null, { errors: ['etcdserver: no leader'] }), status('c', null));
    expect(canStopMember([A, B, C], r, 'http://a:2379')).toMatchObject({ safe: false, leader: null });
  });
  it('does not count the retiring member itself among the others', () => {
    expect(canStopMember([A, B], report(status('a', 'a'), status('b', 'a')), 'http://a:2379')).toMatchObject({ safe: false, othersHealthy: 1, quorum: 2 });
  });
});
