/**
 * `parseSurvey` on the JSON line `etcd-query.sh survey` prints: the certificates part (which
 * member serves each, expiry as ISO, what could not be read), over recorded member lists (etcd
 * 3.5, their URLs turned https as in a mutual-TLS cluster).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseSurvey } from '../support/survey';

const fixture = (name: string) => readFileSync(join(__dirname, '..', 'fixtures', 'etcd-3.5', name), 'utf8').trim().replaceAll('http://', 'https://');
const b64 = (s: string) => Buffer.from(s).toString('base64');
const ok = (out: string) => ({ rc: 0, out: b64(out), err: '' });
const failed = (err: string) => ({ rc: 1, out: '', err: b64(err) });
const local = { running: true, healthy: true, clientUrl: 'https://127.0.0.1:30791', peerUrl: 'https://127.0.0.1:30801', clusterVersion: '3.5.0', serverVersion: '3.5.16' };
const line = (queries: Record<string, unknown>, certs?: unknown) => JSON.stringify({ local, queries, leases: {}, ...(certs === undefined ? {} : { certs }) });
const EXPIRY = 1_828_145_237; // 2027-12-07T02:07:17Z

describe('parseSurvey: certificates', () => {
  it('names the member serving each URL from the member list; expiry as ISO; the unreadable one is an error, not a certificate', () => {
    const s = parseSurvey('i-1', 'etcd-a', line({ members: ok(fixture('member-list-3.json')) }, [
      { kind: 'client', url: 'https://127.0.0.1:30791', notAfter: EXPIRY },
      { kind: 'client', url: 'https://127.0.0.1:30793', notAfter: EXPIRY + 86_400 },
      { kind: 'peer', url: 'https://127.0.0.1:30802', notAfter: 1_766_000_000 },
      { kind: 'peer', url: 'https://127.0.0.1:30803', notAfter: null },
    ]));
    expect(s.certs).toEqual([
      { member: 'a', kind: 'client', url: 'https://127.0.0.1:30791', notAfter: '2027-12-07T02:07:17.000Z' },
      { member: 'c', kind: 'client', url: 'https://127.0.0.1:30793', notAfter: '2027-12-08T02:07:17.000Z' },
      { member: 'b', kind: 'peer', url: 'https://127.0.0.1:30802', notAfter: '2025-12-17T19:33:20.000Z' },
    ]);
    expect(s.errors).toEqual(['certificates not read (no TLS answer within 3 s): c peer https://127.0.0.1:30803']);
  });

  it('without quorum (no linearizable member list) the member\'s own view names them', () => {
    const s = parseSurvey('i-1', 'etcd-a', line({ members: failed('context deadline exceeded'), localMembers: ok(fixture('gateway-member-list-no-quorum.json')) }, [
      { kind: 'peer', url: 'https://127.0.0.1:30802', notAfter: EXPIRY },
    ]));
    expect(s.membersFrom).toBe('local');
    expect(s.certs).toEqual([{ member: 'b', kind: 'peer', url: 'https://127.0.0.1:30802', notAfter: '2027-12-07T02:07:17.000Z' }]);
  });

  it('a member not started yet has no name: its ID stands in; a URL no list names stands for itself', () => {
    const s = parseSurvey('i-1', 'etcd-a', line({ members: ok(fixture('member-list-unstarted-learner.json')) }, [
      { kind: 'peer', url: 'https://127.0.0.1:30804', notAfter: EXPIRY },
      { kind: 'client', url: 'https://127.0.0.1:30804', notAfter: EXPIRY }, // a peer URL, not a client one
    ]));
    expect(s.certs.map((c) => c.member)).toEqual([s.members!.members.find((m) => !m.started)!.id, 'https://127.0.0.1:30804']);
  });

  it('not read (plain http, no openssl, a host script from before): none, and no error', () => {
    for (const certs of [null, undefined, []]) {
      const s = parseSurvey('i-1', 'etcd-a', line({ members: ok(fixture('member-list-3.json')) }, certs));
      expect([s.certs, s.errors]).toEqual([[], []]);
    }
  });

  it('refuses a malformed certificate entry (the whole answer: it is no answer)', () => {
    const bad = [{ kind: 'server', url: 'https://127.0.0.1:30791', notAfter: EXPIRY }, { kind: 'peer', url: 'https://x:1', notAfter: '2027-12-07' }, { kind: 'peer', url: 'https://x:1', notAfter: -1 }];
    for (const entry of bad) expect(() => parseSurvey('i-1', 'etcd-a', line({}, [entry]))).toThrow();
  });
});
