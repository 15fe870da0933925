import { etcdctl, snapshotOffline, memberIdFromHex, type MemberId } from '../../lib/etcd';

const conn = { endpoints: ['http://10.0.1.5:2379', 'http://10.0.2.5:2379'] };

describe('etcdctl builders', () => {
  it('build argv with hex IDs and validated URLs', () => {
    expect(etcdctl.memberUpdate(conn, memberIdFromHex('fd46fc05ad5060e4'), ['http://10.0.1.9:2380']).args).toEqual([
      '--endpoints=http://10.0.1.5:2379,http://10.0.2.5:2379', '--command-timeout=5s', '--dial-timeout=2s',
      'member', 'update', 'fd46fc05ad5060e4', '--peer-urls=http://10.0.1.9:2380', '-w', 'json',
    ]);
    expect(etcdctl.memberAdd(conn, 'etcd-a', ['http://10.0.1.9:2380'], { learner: true }).args.slice(3)).toEqual([
      'member', 'add', 'etcd-a', '--peer-urls=http://10.0.1.9:2380', '--learner', '-w', 'json',
    ]);
    expect(etcdctl.endpointStatus(conn, { cluster: true }).args.slice(3)).toEqual(['endpoint', 'status', '--cluster', '-w', 'json']);
  });
  it('adds TLS flags', () => {
    const args = etcdctl.memberList({ ...conn, tls: { cacert: '/etc/kubernetes/pki/etcd/ca.crt', cert: '/etc/k/c.crt', key: '/etc/k/c.key' } }).args;
    expect(args).toContain('--cacert=/etc/kubernetes/pki/etcd/ca.crt');
  });
  it.each([
    ['a hostile member name', () => etcdctl.memberAdd(conn, 'a; rm -rf /', ['http://10.0.0.1:2380'], { learner: true })],
    ['a command substitution in a URL', () => etcdctl.memberUpdate(conn, memberIdFromHex('1'), ['http://$(id):2380'])],
    ['a cast, unchecked member ID', () => etcdctl.memberRemove(conn, 'zz; reboot' as MemberId)],
    ['a newline in an endpoint', () => etcdctl.memberList({ endpoints: ['http://10.0.0.1:2379\n--foo'] })],
    ['a port out of range', () => etcdctl.memberList({ endpoints: ['http://10.0.0.1:99999'] })],
    ['snapshot save with two endpoints', () => etcdctl.snapshotSave(conn, '/var/tmp/s.db')],
    ['a relative snapshot path', () => etcdctl.snapshotSave({ endpoints: ['http://10.0.0.1:2379'] }, 'snap.db')],
    ['a .. path', () => etcdctl.snapshotSave({ endpoints: ['http://10.0.0.1:2379'] }, '/var/../etc/passwd')],
    ['an empty endpoint list', () => etcdctl.memberList({ endpoints: [] })],
  ])('refuse %s', (_what, build) => {
    expect(build).toThrow(/invalid|exactly one|at least one|out of range|'\.\.'/);
  });
  it('build restore for etcdctl (3.4) and etcdutl (3.5+) alike', () => {
    const opts = {
      name: 'etcd-a', dataDir: '/var/lib/etcd/restore', token: 'qk-restore-1',
      initialCluster: [{ name: 'etcd-a', peerUrls: ['http://10.0.1.5:2380'] }, { name: 'etcd-b', peerUrls: ['http://10.0.2.5:2380'] }],
      advertisePeerUrls: ['http://10.0.1.5:2380'],
    };
    const a = snapshotOffline.restore('etcdctl', '/var/tmp/s.db', opts);
    const b = snapshotOffline.restore('etcdutl', '/var/tmp/s.db', opts);
    expect(a.bin).toBe('etcdctl');
    expect(b.bin).toBe('etcdutl');
    expect(a.args).toEqual(b.args);
    expect(a.args).toContain('--initial-cluster=etcd-a=http://10.0.1.5:2380,etcd-b=http://10.0.2.5:2380');
    expect(() => snapshotOffline.restore('etcdctl', '/var/tmp/s.db', { ...opts, name: 'etcd-z' })).toThrow(/not in the initial cluster/);
  });
});
