import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  classifyEtcdctlError, hasNoLeader, memberIdFromDecimal, memberIdFromHex, memberIdToDecimal, parseAlarmList, parseEndpointHealth,
  parseEndpointStatus, parseMemberAdd, parseMemberList, parseMoveLeader, parseSnapshotStatus, EtcdError,
} from '../../lib/etcd';

const fx = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'etcd-3.4', name), 'utf8');

describe('member IDs', () => {
  it('converts a decimal ID above 2^53 to hex exactly (JSON.parse would round it)', () => {
    const dec = '18250551641278275812';
    expect(Number(dec) > Number.MAX_SAFE_INTEGER).toBe(true);
    // The rounding trap this module exists for:
    expect((JSON.parse(dec) as number).toString(16)).not.toBe('fd46fc05ad5060e4');
    expect(memberIdFromDecimal(dec)).toBe('fd46fc05ad5060e4');
    expect(memberIdToDecimal(memberIdFromHex('fd46fc05ad5060e4'))).toBe(dec);
  });
  it('round-trips the uint64 extremes and normalises hex', () => {
    expect(memberIdFromDecimal('18446744073709551615')).toBe('ffffffffffffffff');
    expect(memberIdFromHex('00FD46FC05AD5060E4')).toBe('fd46fc05ad5060e4');
    expect(() => memberIdFromDecimal('18446744073709551616')).toThrow(RangeError);
    expect(() => memberIdFromHex('fd46fc05ad5060e4; rm -rf /')).toThrow(/invalid member ID/);
    expect(() => memberIdFromDecimal('1e19')).toThrow(RangeError);
  });
});

describe('parseMemberList', () => {
  it('keeps 64-bit IDs exact and marks every member started', () => {
    const list = parseMemberList(fx('member-list-3.json'));
    expect(list.clusterId).toBe(memberIdFromDecimal('11066264056495731693'));
    expect(list.members.map((m) => [m.name, m.id])).toEqual([
      ['b', '177abfd329bb8825'],
      ['c', '8e83918d3e14cd19'],
      ['a', 'fd46fc05ad5060e4'],
    ]);
    expect(list.members.every((m) => m.started && !m.isLearner)).toBe(true);
    expect(list.members[2]?.peerUrls).toEqual(['http://127.0.0.1:23801']);
  });
  it('recognises an added-but-unstarted learner (no name, no client URLs)', () => {
    const list = parseMemberList(fx('member-list-unstarted-learner.json'));
    const learner = list.members.find((m) => m.isLearner);
    expect(learner).toEqual({ id: '228afd0dd79f3e62', name: '', peerUrls: ['http://127.0.0.1:23804'], clientUrls: [], isLearner: true, started: false });
  });
  it('parses member add --learner output', () => {
    const res = parseMemberAdd(fx('member-add-learner.json'));
    expect(res.member.id).toBe('228afd0dd79f3e62');
    expect(res.member.isLearner).toBe(true);
    expect(res.members).toHaveLength(4);
  });
  it('rejects output that is not member-list JSON with a bad-output error', () => {
    expect(() => parseMemberList('Error: something')).toThrow(EtcdError);
    expect(() => parseMemberList('{"members":[]}')).toThrow(/unexpected JSON shape/);
  });
});

describe('parseEndpointStatus', () => {
  it('reads leader and learner state of every member', () => {
    const r = parseEndpointStatus(fx('endpoint-status-cluster.json'));
    expect(r.unreachable).toEqual([]);
    expect(r.statuses).toHaveLength(3);
    expect(r.statuses.every((s) => s.leader === 'fd46fc05ad5060e4')).toBe(true);
    expect(r.statuses.filter((s) => s.isLeader).map((s) => s.endpoint)).toEqual(['http://127.0.0.1:23791']);
    expect(r.statuses[0]).toMatchObject({ raftIndex: 9, raftTerm: 2, version: '3.4.23', dbSize: 20480, isLearner: false, revision: 1 });
  });
  it('treats rc=0 with errors ["etcdserver: no leader"] and no leader field as no leader', () => {
    const r = parseEndpointStatus(fx('endpoint-status-no-leader.json'));
    const s = r.statuses[0]!;
    expect(s.leader).toBeNull();
    expect(s.isLeader).toBe(false);
    expect(s.errors).toEqual(['etcdserver: no leader']);
    expect(hasNoLeader(s)).toBe(true);
  });
  it('keeps the answering endpoints and lists the unreachable one from stderr', () => {
    const r = parseEndpointStatus(fx('endpoint-status-unreachable.json'), fx('endpoint-status-unreachable.err'));
    expect(r.statuses.map((s) => s.endpoint)).toEqual(['http://127.0.0.1:23791']);
    expect(r.unreachable).toEqual([{ endpoint: 'http://127.0.0.1:23799', error: 'context deadline exceeded' }]);
  });
  it('reports an expected endpoint that gave no answer at all', () => {
    const r = parseEndpointStatus('', '', ['http://127.0.0.1:1']);
    expect(r.unreachable).toEqual([{ endpoint: 'http://127.0.0.1:1', error: 'no answer' }]);
  });
  it('surfaces alarm errors', () => {
    const s = parseEndpointStatus(fx('endpoint-status-nospace.json')).statuses[0]!;
    expect(s.errors[0]).toMatch(/alarm:NOSPACE/);
    expect(hasNoLeader(s)).toBe(false);
  });
});

describe('other parsers', () => {
  it('endpoint health lists healthy and unhealthy endpoints', () => {
    expect(parseEndpointHealth(fx('endpoint-health-unreachable.json'))).toEqual([
      { endpoint: 'http://127.0.0.1:23791', healthy: true, took: '9.17429ms', error: null },
      { endpoint: 'http://127.0.0.1:23799', healthy: false, took: '5.000912581s', error: 'context deadline exceeded' },
    ]);
  });
  it('alarm list: empty and NOSPACE', () => {
    expect(parseAlarmList('{}')).toEqual([]);
    expect(parseAlarmList(fx('alarm-list-nospace.json'))).toEqual([{ memberId: memberIdFromDecimal('9009370488483034218'), alarm: 'NOSPACE' }]);
  });
  it('snapshot status', () => {
    expect(parseSnapshotStatus(fx('snapshot-status.json'))).toEqual({ hash: '1353840037', revision: 21, totalKeys: 27, totalSize: 20480 });
  });
  it('move-leader', () => {
    expect(parseMoveLeader(fx('move-leader.out'))).toEqual({ from: 'fd46fc05ad5060e4', to: '177abfd329bb8825' });
    expect(() => parseMoveLeader('')).toThrow(EtcdError);
  });
  it('classifies etcdctl errors from real stderr', () => {
    expect(classifyEtcdctlError(fx('member-promote-not-ready.err'))).toBe('learner-not-in-sync');
    expect(classifyEtcdctlError(fx('move-leader-not-leader.out'))).toBe('not-leader-endpoint');
    expect(classifyEtcdctlError(fx('endpoint-health-no-leader.err'))).toBe('unhealthy-cluster');
    expect(classifyEtcdctlError('Error: etcdserver: can only promote a learner member')).toBe('not-a-learner');
    expect(classifyEtcdctlError('Error: etcdserver: no leader')).toBe('no-leader');
    expect(classifyEtcdctlError('Error: context deadline exceeded')).toBe('timeout');
    expect(classifyEtcdctlError('something odd')).toBe('failed');
    // The final Error line wins over the retry warnings before it.
    const retried = '{"level":"warn","msg":"retrying of unary invoker failed","error":"rpc error: code = Unavailable desc = etcdserver: unhealthy cluster"}\nError: etcdserver: member not found\n';
    expect(classifyEtcdctlError(retried)).toBe('member-not-found');
    // A generic final timeout after refused connections means unreachable.
    expect(classifyEtcdctlError('{"error":"connection error: desc = \\"transport: Error while dialing dial tcp 127.0.0.1:1: connect: connection refused\\""}\nError: context deadline exceeded')).toBe('unreachable');
  });
});
