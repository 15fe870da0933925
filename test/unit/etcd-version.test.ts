import { judgeJoin, parseEtcdVersion } from '../../lib/domain/etcd-version';

describe('which etcd a replacement may bring into a cluster (etcd upgrades one minor at a time, never down)', () => {
  it.each([
    ['3.5.16', '3.5.0', true, 'same minor: patch'],
    ['3.5.16', '3.4.0', true, 'upgrade'],
    ['3.4.23', '3.4.0', true, 'patch'],
    ['3.6.5', '3.5.0', true, 'upgrade'],
  ])('etcd %s into a cluster at %s: allowed', (binary, cluster, ok, _kind) => {
    expect(judgeJoin(binary, cluster).ok).toBe(ok);
  });

  it('names an upgrade as one, and what happens next', () => {
    expect(judgeJoin('3.5.16', '3.4.0')).toEqual({ ok: true, kind: 'upgrade', detail: expect.stringMatching(/rolling upgrade to 3\.5 \(the cluster moves to 3\.5 once every member runs it\)/) as unknown });
    expect(judgeJoin('3.5.16', '3.5.0')).toMatchObject({ ok: true, kind: 'patch' });
    expect(judgeJoin('3.5.0', '3.5.0')).toMatchObject({ ok: true, kind: 'same' });
  });

  it.each([
    ['3.4.23', '3.5.0', 'downgrade'],
    ['3.3.27', '3.5.0', 'downgrade'],
    ['2.3.8', '3.4.0', 'downgrade'],
    ['4.0.0', '3.5.0', 'downgrade'], // another major: not an upgrade etcd supports by replacing members either
    ['3.6.0', '3.4.0', 'skip'],
    ['3.7.0', '3.5.0', 'skip'],
  ])('etcd %s into a cluster at %s: refused (%s)', (binary, cluster, kind) => {
    const v = judgeJoin(binary, cluster);
    expect(v).toMatchObject({ ok: false, kind });
    expect(v.detail).toContain(binary);
  });

  it('cannot judge what it cannot read: unknown, never a guess', () => {
    expect(judgeJoin(null, '3.5.0')).toMatchObject({ ok: false, kind: 'unknown' });
    expect(judgeJoin('3.5.16', null)).toMatchObject({ ok: false, kind: 'unknown' });
    expect(judgeJoin('3.5.16; rm -rf /', '3.5.0')).toMatchObject({ ok: false, kind: 'unknown' });
  });

  it('parses what etcd prints (and the v-prefixed form), nothing else', () => {
    expect(parseEtcdVersion('3.5.16')).toEqual({ major: 3, minor: 5, patch: 16 });
    expect(parseEtcdVersion('v3.4.23')).toEqual({ major: 3, minor: 4, patch: 23 });
    expect(parseEtcdVersion('3.5')).toEqual({ major: 3, minor: 5, patch: 0 });
    expect(parseEtcdVersion('3.5.16-rc.0')).toBeNull();
    expect(parseEtcdVersion('')).toBeNull();
  });
});
