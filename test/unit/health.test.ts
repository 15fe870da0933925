import { assessHealth, assessLease, type HealthInput } from '../../lib/domain/health';
import type { EndpointStatus } from '../../lib/etcd';
import { id, member, status as baseStatus } from '../support/etcd-fixtures';

const status = (h: string, leader: string | null, extra: Partial<EndpointStatus> = {}) => baseStatus(h, leader, { dbSize: 1000, dbSizeInUse: 1000, raftTerm: 7, ...extra });
const members = [member('a', 'etcd-a'), member('b', 'etcd-b'), member('c', 'etcd-c')];
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0);
const lease = (holder: string, ageSec: number, duration = 15) => ({
  httpStatus: 200, error: null,
  body: JSON.stringify({ kind: 'Lease', spec: { holderIdentity: holder, leaseDurationSeconds: duration, renewTime: new Date(NOW - ageSec * 1000).toISOString().replace('Z', '000Z') } }),
});
const input = (over: Partial<HealthInput> = {}): HealthInput => ({
  members, status: { statuses: [status('a', 'a'), status('b', 'a'), status('c', 'a')], unreachable: [] }, alarms: [],
  leases: { 'kube-scheduler': lease('master-a_1', 3), 'kube-controller-manager': lease('master-b_2', 4) },
  components: ['kube-controller-manager', 'kube-scheduler'], now: NOW, quotaBytes: 10_000, previous: { raftTerm: 7, leaderId: id('a') }, ...over,
});

describe('assessHealth', () => {
  it('a healthy cluster: leader, margin 1, no problems', () => {
    const h = assessHealth(input());
    expect(h).toMatchObject({ hasLeader: true, leaderName: 'etcd-a', healthyVoters: 3, quorum: 2, quorumMargin: 1, leaderChanges: 0, dbSizeRatio: 0.1, problems: [] });
    expect(h.leases.map((l) => [l.component, l.state, l.holder, l.staleSec])).toEqual([['kube-controller-manager', 'ok', 'master-b_2', 4], ['kube-scheduler', 'ok', 'master-a_1', 3]]);
  });
  it('one member down: margin 0 is critical (one more failure loses quorum)', () => {
    const h = assessHealth(input({ status: { statuses: [status('a', 'a'), status('b', 'a')], unreachable: [{ endpoint: 'http://10.0.c.5:2379', error: 'deadline' }] } }));
    expect(h.quorumMargin).toBe(0);
    expect(h.problems.map((p) => [p.code, p.severity])).toEqual([['margin-zero', 'critical']]);
  });
  it('two members down: no leader', () => {
    const h = assessHealth(input({ status: { statuses: [status('c', null, { errors: ['etcdserver: no leader'] })], unreachable: [] } }));
    expect(h.hasLeader).toBe(false);
    expect(h.problems[0]).toMatchObject({ code: 'no-leader', severity: 'critical' });
    expect(h.problems[0]!.action).toMatch(/restore/);
  });
  it('nobody answers: unreachable, not healthy', () => {
    const h = assessHealth(input({ members: null, status: { statuses: [], unreachable: [] } }));
    expect(h).toMatchObject({ reachable: false, hasLeader: false });
    expect(h.problems.map((p) => p.code)).toEqual(['unreachable']);
  });
  it('counts elections since the last probe from the raft term', () => {
    const st = [status('a', 'b', { raftTerm: 9 }), status('b', 'b', { raftTerm: 9 }), status('c', 'b', { raftTerm: 9 })];
    expect(assessHealth(input({ status: { statuses: st, unreachable: [] } })).leaderChanges).toBe(2);
    expect(assessHealth(input({ status: { statuses: st, unreachable: [] }, previous: null })).leaderChanges).toBe(0);
  });
  it('reports NOSPACE and a DB near its quota', () => {
    const h = assessHealth(input({ alarms: [{ memberId: id('b'), alarm: 'NOSPACE' }], quotaBytes: 1200 }));
    expect(h.problems.map((p) => [p.code, p.subject])).toEqual([['etcd-alarm', 'etcd-b'], ['db-size', undefined]]);
    expect(h.alarms).toEqual([{ member: 'etcd-b', alarm: 'NOSPACE' }]);
  });
});

describe('assessLease', () => {
  it('is stalled only beyond 2× its duration, and names the last holder', () => {
    expect(assessLease('kube-scheduler', lease('m-1', 30), NOW).state).toBe('ok');
    const l = assessLease('kube-scheduler', lease('m-1', 31), NOW);
    expect(l).toMatchObject({ state: 'stalled', holder: 'm-1', staleSec: 31, durationSec: 15 });
    const h = assessHealth(input({ leases: { 'kube-scheduler': lease('master-c_9', 120), 'kube-controller-manager': lease('m', 1) } }));
    expect(h.problems).toEqual([expect.objectContaining({ code: 'lease-stalled', subject: 'kube-scheduler' })]);
    expect(h.problems[0]!.summary).toMatch(/kube-scheduler leader election stalled.*master-c_9/);
  });
  it('tells a missing Lease from an unreadable one (API server down)', () => {
    expect(assessLease('kube-scheduler', { httpStatus: 404, body: '{}', error: null }, NOW).state).toBe('missing');
    expect(assessLease('kube-scheduler', { httpStatus: 500, body: '{}', error: null }, NOW).state).toBe('unreadable');
    expect(assessLease('kube-scheduler', { httpStatus: 0, body: '', error: 'connection refused' }, NOW)).toMatchObject({ state: 'unreadable', detail: 'connection refused' });
    expect(assessLease('kube-scheduler', { httpStatus: 200, body: 'not json', error: null }, NOW).state).toBe('unreadable');
  });
});
