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

describe('certificates', () => {
  const at = (days: number) => new Date(NOW + days * 86_400_000).toISOString();
  const cert = (m: string, kind: 'client' | 'peer', days: number) => ({ member: `etcd-${m}`, kind, url: `https://10.0.${m}.5:${kind === 'client' ? 2379 : 2380}`, notAfter: at(days) });
  const fresh = ['a', 'b', 'c'].flatMap((m) => [cert(m, 'client', 365), cert(m, 'peer', 365)]);
  const withCerts = (certificates: ReturnType<typeof cert>[], over: Partial<HealthInput> = {}) => assessHealth(input({ certificates, ...over }));

  it('all fresh: days left per certificate, the earliest exported, no problem', () => {
    const h = withCerts(fresh);
    expect(h.certDaysLeft).toBe(365);
    expect(h.certificates.map((c) => [c.member, c.kind, c.daysLeft])).toEqual(['a', 'b', 'c'].flatMap((m) => [[`etcd-${m}`, 'client', 365], [`etcd-${m}`, 'peer', 365]]));
    expect(h.problems).toEqual([]);
  });
  it('none read (plain http, no openssl): unknown, not a problem', () => {
    expect(assessHealth(input())).toMatchObject({ certificates: [], certDaysLeft: null, problems: [] });
    expect(withCerts([])).toMatchObject({ certificates: [], certDaysLeft: null, problems: [] });
  });
  it('a peer certificate with 10 days left: a warning naming member, kind, date and the renewal; earliest first', () => {
    const h = withCerts([...fresh.filter((c) => !(c.member === 'etcd-b' && c.kind === 'peer')), cert('b', 'peer', 10)]);
    expect(h.certDaysLeft).toBe(10);
    expect(h.certificates[0]).toEqual({ ...cert('b', 'peer', 10), daysLeft: 10 });
    expect(h.problems).toEqual([{
      code: 'cert-expiry', severity: 'warning', subject: 'etcd-b',
      summary: "etcd etcd-b's peer certificate expires 2026-12-05 12:00:00 UTC (in 10 d)",
      action: expect.stringMatching(/^Renew it on etcd-b's master: `kubeadm certs renew etcd-peer` \(kubeadm\), or from your own PKI into the files host.env names \(QK_ETCD_PEER_CERT\); etcd serves the new file from its next TLS handshake/) as string,
    }]);
  });
  it('days left are rounded down (never more time than there is): 10 days less 1 ms is 9.9', () => {
    expect(withCerts([{ ...cert('a', 'client', 0), notAfter: new Date(NOW + 10 * 86_400_000 - 1).toISOString() }]).certDaysLeft).toBe(9.9);
  });
  it('thresholds: 30 days is fine, under 30 a warning, under 7 critical, expired critical', () => {
    const judge = (days: number) => withCerts([cert('a', 'client', days)]).problems.map((p) => p.severity);
    expect([judge(30), judge(29.9), judge(7), judge(6.9), judge(-2)]).toEqual([[], ['warning'], ['warning'], ['critical'], ['critical']]);
    expect(withCerts([cert('a', 'client', -2)]).problems[0]!.summary).toBe("etcd etcd-a's client certificate expired 2026-11-23 12:00:00 UTC (2 d ago): TLS connections to it fail");
    expect(withCerts([cert('a', 'client', 0.5)]).problems[0]!.summary).toMatch(/\(in less than a day\)$/);
  });
  it('one problem per member: both of its certificates expiring name both and both kubeadm renewals; the worse member first', () => {
    const h = withCerts([cert('a', 'client', 20), cert('a', 'peer', 25), cert('c', 'peer', 3), cert('b', 'client', 200)]);
    expect(h.problems.map((p) => [p.subject, p.severity])).toEqual([['etcd-c', 'critical'], ['etcd-a', 'warning']]);
    expect(h.problems[1]!.summary).toBe("etcd etcd-a's client and peer certificates expire 2026-12-15 12:00:00 UTC (in 20 d)");
    expect(h.problems[1]!.action).toMatch(/`kubeadm certs renew etcd-server etcd-peer`.*\(QK_ETCD_CERT, QK_ETCD_PEER_CERT\)/);
    expect(h.certDaysLeft).toBe(3);
  });
  it('come after the quorum problems, and are reported when no member answers too (an expired certificate may be why)', () => {
    const down = withCerts([cert('a', 'peer', -1)], { members: null, status: { statuses: [], unreachable: [] } });
    expect(down.problems.map((p) => p.code)).toEqual(['unreachable', 'cert-expiry']);
    const margin = withCerts([cert('a', 'peer', 12)], { status: { statuses: [status('a', 'a'), status('b', 'a')], unreachable: [] } });
    expect(margin.problems.map((p) => p.code)).toEqual(['margin-zero', 'cert-expiry']);
  });
});
