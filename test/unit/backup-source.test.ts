import { chooseBackupSource } from '../../lib/domain/backup-source';
import type { EndpointStatus, EndpointStatusReport } from '../../lib/etcd';
import { member, status } from '../support/etcd-fixtures';
const report = (...s: EndpointStatus[]): EndpointStatusReport => ({ statuses: s, unreachable: [] });
const A = member('a', 'etcd-a');
const B = member('b', 'etcd-b');
const C = member('c', 'etcd-c');
const all = new Map([['etcd-a', 'i-0000000a'], ['etcd-b', 'i-0000000b'], ['etcd-c', 'i-0000000c']]);

describe('chooseBackupSource', () => {
  it('prefers the most up-to-date follower', () => {
    const r = chooseBackupSource([A, B, C], report(status('a', 'a'), status('b', 'a', { raftIndex: 9 }), status('c', 'a', { raftIndex: 11 })), all);
    expect(r).toMatchObject({ kind: 'source', member: 'etcd-c', instanceId: 'i-0000000c', role: 'follower', clientUrl: 'http://10.0.c.5:2379' });
  });
  it('never picks a learner, and uses the leader only when no follower can serve', () => {
    const L = member('b', 'etcd-b', { isLearner: true });
    const r = chooseBackupSource([A, L, C], report(status('a', 'a'), status('b', 'a', { isLearner: true }), status('c', 'a')), new Map([['etcd-a', 'i-0000000a'], ['etcd-b', 'i-0000000b']]));
    expect(r).toMatchObject({ kind: 'source', member: 'etcd-a', role: 'leader' });
  });
  it('skips members whose slot has no instance', () => {
    const r = chooseBackupSource([A, B, C], report(status('a', 'a'), status('b', 'a'), status('c', 'a')), new Map([['etcd-a', 'i-0000000a'], ['etcd-c', 'i-0000000c']]));
    expect(r).toMatchObject({ member: 'etcd-c' });
  });
  it('refuses without a leader or without quorum', () => {
    expect(chooseBackupSource([A, B, C], report(status('a', null, { errors: ['etcdserver: no leader'] })), all).kind).toBe('none');
    const none = chooseBackupSource([A, B, C], report(status('a', 'a')), all);
    expect(none.kind === 'none' && none.reason).toMatch(/1\/3 healthy voters, quorum 2/);
  });
});
