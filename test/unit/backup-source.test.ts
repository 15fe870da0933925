import { chooseBackupSource } from '../../lib/domain/backup-source';
import type { EndpointStatus, EndpointStatusReport } from '../../lib/etcd';
import { id, member, status } from '../support/etcd-fixtures';
const report = (...s: EndpointStatus[]): EndpointStatusReport => ({ statuses: s, unreachable: [] });
const A = member('a', 'etcd-a');
const B = member('b', 'etcd-b');
const C = member('c', 'etcd-c');
/** Slots by the member ID they claim: (hex, slot tag, instance). */
const slots = (...l: Array<[string, string, string]>) => new Map(l.map(([h, slot, instanceId]) => [id(h), { slot, instanceId }]));
const all = slots(['a', 'etcd-a', 'i-0000000a'], ['b', 'etcd-b', 'i-0000000b'], ['c', 'etcd-c', 'i-0000000c']);

describe('chooseBackupSource', () => {
  it('prefers the most up-to-date follower', () => {
    const r = chooseBackupSource([A, B, C], report(status('a', 'a'), status('b', 'a', { raftIndex: 9 }), status('c', 'a', { raftIndex: 11 })), all);
    expect(r).toMatchObject({ kind: 'source', member: 'etcd-c', instanceId: 'i-0000000c', role: 'follower', clientUrl: 'http://10.0.c.5:2379' });
  });
  it('never picks a learner, and uses the leader only when no follower can serve', () => {
    const L = member('b', 'etcd-b', { isLearner: true });
    const r = chooseBackupSource([A, L, C], report(status('a', 'a'), status('b', 'a', { isLearner: true }), status('c', 'a')), slots(['a', 'etcd-a', 'i-0000000a'], ['b', 'etcd-b', 'i-0000000b']));
    expect(r).toMatchObject({ kind: 'source', member: 'etcd-a', role: 'leader' });
  });
  it('skips members whose slot has no instance', () => {
    const r = chooseBackupSource([A, B, C], report(status('a', 'a'), status('b', 'a'), status('c', 'a')), slots(['a', 'etcd-a', 'i-0000000a'], ['c', 'etcd-c', 'i-0000000c']));
    expect(r).toMatchObject({ member: 'etcd-c' });
  });
  it('refuses without a leader or without quorum', () => {
    expect(chooseBackupSource([A, B, C], report(status('a', null, { errors: ['etcdserver: no leader'] })), all).kind).toBe('none');
    const none = chooseBackupSource([A, B, C], report(status('a', 'a')), all);
    expect(none.kind === 'none' && none.reason).toMatch(/1\/3 healthy voters, quorum 2/);
  });
  it('a follower far behind the leader (just rejoined with old data) is never the source: the leader is (issue 18)', () => {
    const lagging = report(status('a', 'a', { raftIndex: 50_000 }), status('b', 'a', { raftIndex: 1_200 }), status('c', 'a', { raftIndex: 48_500 }));
    expect(chooseBackupSource([A, B, C], lagging, all)).toMatchObject({ member: 'etcd-a', role: 'leader' });
    // Within the bound a follower still serves.
    expect(chooseBackupSource([A, B, C], report(status('a', 'a', { raftIndex: 50_000 }), status('b', 'a', { raftIndex: 49_500 })), all)).toMatchObject({ member: 'etcd-b', role: 'follower' });
  });
  it('members named after hosts: matched to their slots by ID, the key takes the slot tag', () => {
    const hostNamed = [member('a', 'ip-10-0-1-5'), member('b', 'ip-10-0-2-5'), member('c', 'ip-10-0-3-5')];
    expect(chooseBackupSource(hostNamed, report(status('a', 'a'), status('b', 'a', { raftIndex: 11 }), status('c', 'a', { raftIndex: 9 })), all)).toMatchObject({ member: 'etcd-b', instanceId: 'i-0000000b' });
  });
});
