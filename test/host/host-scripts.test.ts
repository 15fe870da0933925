/**
 * Host scripts run directly (as SSM would run them) against a sandbox host root, with real
 * etcd where they start it. Hostile arguments must be refused before anything is touched.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { etcdctl, type EtcdInvocation, memberIdFromHex, snapshotOffline } from '../../lib/etcd';
import { freePort } from '../../sandbox/ports';
import { makeTempDir, removeDir, isAlive } from '../../sandbox/procs';

const HOST = join(__dirname, '..', '..', 'host');

interface Res { code: number | null; stdout: string; stderr: string }

function run(root: string, script: string, args: string[], env: Record<string, string> = {}): Res {
  const r = spawnSync('bash', [join(HOST, script), ...args], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, QK_HOST_ROOT: root, QK_DEVICE_MODE: 'directory', QK_SERVICE_MODE: 'process', ...env },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every path under dir (to prove nothing was created or changed). */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      out.push(p);
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  walk(dir);
  return out.sort();
}

const VOL = 'vol-0123456789abcdef0';

function makeHost(): { root: string; volume: string; sentinel: string } {
  const root = makeTempDir('host');
  mkdirSync(join(root, 'etc/quorum-keeper'), { recursive: true });
  mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
  mkdirSync(join(root, 'var/lib'), { recursive: true });
  const volume = join(root, '..', `${root.split('/').pop()}-vol`);
  mkdirSync(volume);
  symlinkSync(volume, join(root, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOL.replace('-', '')}`));
  return { root, volume, sentinel: join(root, 'PWNED') };
}

/** A fresh sandbox host (and its volume directory) per test, removed afterwards. */
function useHost(): () => ReturnType<typeof makeHost> {
  let current: ReturnType<typeof makeHost> | undefined;
  beforeEach(() => {
    current = makeHost();
  });
  afterEach(() => {
    if (!current) return;
    removeDir(current.root);
    removeDir(current.volume);
  });
  return () => {
    if (!current) throw new Error('useHost(): no host outside a test');
    return current;
  };
}

/** A member's data as the host scripts judge it: a backend and a write-ahead log. */
function fakeMemberData(volume: string, db: string): void {
  mkdirSync(join(volume, 'data/member/snap'), { recursive: true });
  mkdirSync(join(volume, 'data/member/wal'), { recursive: true });
  writeFileSync(join(volume, 'data/member/snap/db'), db);
  writeFileSync(join(volume, 'data/member/wal/0000000000000000-0000000000000000.wal'), 'log');
}

describe('host scripts refuse hostile arguments before touching anything', () => {
  const host = useHost();
  let h: ReturnType<typeof makeHost>;
  beforeEach(() => {
    h = host();
  });

  const hostile = (sentinel: string) => [
    '; rm -rf /',
    `$(touch ${sentinel})`,
    `\`touch ${sentinel}\``,
    'etcd-a\ntouch /tmp/x',
    'x'.repeat(5000),
    "a' || touch /tmp/y '",
    '../../etc',
    '',
  ];

  const cases: Array<[string, (bad: string) => string[]]> = [
    ['etcd-mount.sh', (bad) => ['--volume-id', bad, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']],
    ['etcd-mount.sh', (bad) => ['--volume-id', VOL, '--cluster', bad, '--member', 'etcd-a', '--allow-format']],
    ['etcd-mount.sh', (bad) => ['--volume-id', VOL, '--cluster', 'prod', '--member', bad, '--allow-format']],
    ['etcd-mount.sh', (bad) => ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--mount-point', bad, '--allow-format']],
    ['etcd-mount.sh', (bad) => ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--device', bad]],
    ['etcd-member.sh', (bad) => ['start', '--name', bad, '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--initial-cluster-state', 'new']],
    ['etcd-member.sh', (bad) => ['start', '--name', 'etcd-a', '--initial-cluster', bad, '--initial-cluster-state', 'new']],
    ['etcd-member.sh', (bad) => ['start', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--initial-cluster-state', bad]],
    ['etcd-member.sh', (bad) => ['start', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--initial-cluster-state', 'new', '--token', bad]],
    ['etcd-member.sh', (bad) => ['start', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--initial-cluster-state', 'new', '--data-dir', bad]],
    ['etcdctl.sh', (bad) => ['member', 'list', bad]],
    ['etcd-snapshot.sh', (bad) => ['prepare', '--work-dir', bad]],
    ['etcd-snapshot.sh', (bad) => ['prepare', '--work-dir', '/var/tmp/s', '--endpoint', bad]],
    ['etcd-snapshot.sh', (bad) => ['prepare', '--work-dir', '/var/tmp/s', '--compressor', bad]],
    ['etcd-snapshot.sh', (bad) => [bad, '--work-dir', '/var/tmp/s']],
    ['etcd-snapshot.sh', (bad) => ['upload', '--work-dir', '/var/tmp/s', '--file', bad, '--upload-url-b64', 'aHR0cDovL3gvYQ']],
    ['etcd-snapshot.sh', (bad) => ['upload', '--work-dir', '/var/tmp/s', '--file', 'snapshot-20261125T120000Z.db.zst', '--upload-url-b64', bad]],
    ['etcd-snapshot.sh', (bad) => ['discard', '--work-dir', '/var/tmp/s', '--file', bad]],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 2 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 4 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 6 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 8 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 10 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['restore', '--work-dir', '/var/tmp/r', '--url-b64', 'aHR0cDovL3gvYQ', '--sha256', 'a'.repeat(64), '--compressor', 'zstd', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:2380', '--token', 't1'].map((a, i) => (i === 12 ? bad : a))],
    ['etcd-restore.sh', (bad) => ['rollback', '--token', bad]],
    ['etcd-restore.sh', (bad) => ['verify', '--revision', bad]],
    ['etcd-restore.sh', (bad) => ['inspect', '--data-dir', bad]],
  ];

  it.each(cases.map(([s, f], i) => [`${s} #${i}`, s, f] as const))('%s', (_label, script, argsFor) => {
    const before = tree(h.root);
    for (const bad of hostile(h.sentinel)) {
      const r = run(h.root, script, argsFor(bad));
      // etcdctl.sh gets the empty string and '../../etc' as bare words; both must still be refused.
      expect({ bad: bad.slice(0, 40), code: r.code }).toEqual({ bad: bad.slice(0, 40), code: 2 });
      expect(r.stderr).toMatch(/invalid|refused|missing|longer than|not allowed|needs a value|unknown argument|usage/);
      expect(r.stdout).toBe('');
    }
    expect(existsSync(h.sentinel)).toBe(false);
    expect(tree(h.root)).toEqual(before);
    expect(readdirSync(h.volume)).toEqual([]);
  });

  it.each(['vol-xyz', 'vol-123', 'VOL-0123456789ABCDEF0', `${VOL} `, 'vol-0123456789abcdef01', 'vol_0123456789abcdef0', 'i-0123456789abcdef0'])(
    'etcd-mount.sh refuses volume ID shape %j', (id) => {
      const r = run(h.root, 'etcd-mount.sh', ['--volume-id', id, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid volume ID/);
    });

  it('etcdctl.sh refuses subcommands Quorum Keeper does not use', () => {
    for (const args of [['put', 'k', 'v'], ['del', 'k'], ['member'], ['snapshot', 'x'], ['lease', 'grant', '10']]) {
      const r = run(h.root, 'etcdctl.sh', args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/not allowed/);
    }
  });
});

describe('etcd-mount.sh protects etcd data', () => {
  const host = useHost();
  let h: ReturnType<typeof makeHost>;
  beforeEach(() => {
    h = host();
  });
  const mount = (member = 'etcd-a', extra: string[] = [], cluster = 'prod', env: Record<string, string> = {}) =>
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', cluster, '--member', member, ...extra], env);

  it('does not format a blank volume unless allowed, then formats, marks and mounts it', () => {
    const refused = mount();
    expect(refused.code).toBe(3);
    expect(refused.stderr).toMatch(/blank; re-run with --allow-format/);
    expect(readdirSync(h.volume)).toEqual([]);
    const ok = mount('etcd-a', ['--allow-format']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ result: 'mounted', formatted: true, hasData: false, dataDir: '/var/lib/etcd/data' });
    expect(readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8')).toBe(`cluster=prod\nmember=etcd-a\nvolume=${VOL}\n`);
    // Idempotent: a second run changes nothing and does not format again.
    const again = mount('etcd-a', ['--allow-format']);
    expect(JSON.parse(again.stdout)).toMatchObject({ formatted: false });
  });

  it('installs a mount unit for its own volume (by its volume-ID device link), so the volume is mounted again at boot; --unmount removes it', () => {
    const unit = join(h.root, 'etc/systemd/system/var-lib-etcd.mount');
    expect(mount('etcd-a', ['--allow-format']).code).toBe(0);
    const text = readFileSync(unit, 'utf8');
    expect(text).toContain(`What=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOL.replace('-', '')}\n`);
    expect(text).toContain('Where=/var/lib/etcd\n');
    expect(text).toContain('Options=noatime,nofail,x-systemd.device-timeout=30s\n');
    expect(text).toContain('[Install]\nWantedBy=multi-user.target\n');
    // Idempotent: a second mount leaves it as it is (and says nothing about it).
    const again = mount('etcd-a');
    expect(again.code).toBe(0);
    expect(again.stderr).not.toMatch(/installed var-lib-etcd\.mount/);
    const out = run(h.root, 'etcd-mount.sh', ['--unmount', '--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a']);
    expect(out.code).toBe(0);
    expect(existsSync(unit)).toBe(false);
    // A refused volume (another member's) installs nothing.
    expect(mount('etcd-b').code).toBe(4);
    expect(existsSync(unit)).toBe(false);
  });

  it('refuses to format a volume that holds data, even with --allow-format', () => {
    fakeMemberData(h.volume, 'precious etcd data');
    // Many top-level entries: listing them must not trip pipefail (a `| head` once did).
    for (let i = 0; i < 50; i++) writeFileSync(join(h.volume, `other-${i}`), 'x');
    const r = mount('etcd-a', ['--allow-format']);
    // Not blank → never formatted; no marker → refused (no adoption without --adopt).
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(/holds data but no Quorum Keeper marker/);
    expect(readFileSync(join(h.volume, 'data/member/snap/db'), 'utf8')).toBe('precious etcd data');
    expect(existsSync(join(h.volume, '.qk-fs'))).toBe(false);
    expect(existsSync(join(h.root, 'var/lib/etcd'))).toBe(false);
    // With --adopt it is mounted as is, marked, and reported as having data.
    const adopted = mount('etcd-a', ['--adopt']);
    expect(adopted.code).toBe(0);
    expect(JSON.parse(adopted.stdout)).toMatchObject({ formatted: false, hasData: true });
    expect(readFileSync(join(h.volume, 'data/member/snap/db'), 'utf8')).toBe('precious etcd data');
  });

  it('--inspect reports device, mount, data and marker, and changes nothing', () => {
    const inspect = () => {
      const r = mount('etcd-a', ['--inspect']);
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as Record<string, unknown>;
    };
    // Blank and unmounted: nothing is formatted or mounted by looking.
    expect(inspect()).toMatchObject({ result: 'inspected', volumeId: VOL, mountedDevice: null, onVolume: false, hasData: false, marker: null });
    expect(readdirSync(h.volume)).toEqual([]);
    expect(existsSync(join(h.root, 'var/lib/etcd'))).toBe(false);
    // Data, mounted by hand (no marker): on the volume, with data, no marker.
    fakeMemberData(h.volume, 'hand-built etcd data');
    symlinkSync(h.volume, join(h.root, 'var/lib/etcd'));
    expect(inspect()).toMatchObject({ onVolume: true, hasData: true, marker: null, dataDir: '/var/lib/etcd/data' });
    expect(existsSync(join(h.volume, '.quorum-keeper-volume'))).toBe(false);
    // Adopted and recorded: the marker as written.
    expect(mount('etcd-a', ['--adopt']).code).toBe(0);
    expect(mount('etcd-a', ['--record-member-id', 'abc123']).code).toBe(0);
    expect(inspect()).toMatchObject({ onVolume: true, hasData: true, marker: { cluster: 'prod', member: 'etcd-a', volume: VOL, memberId: 'abc123' } });
  });

  it('refuses a volume whose marker names another member or cluster, and unmounts it', () => {
    expect(mount('etcd-a', ['--allow-format']).code).toBe(0);
    const marker = readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8');
    rmMount(h.root);
    const other = mount('etcd-b', ['--allow-format']);
    expect(other.code).toBe(4);
    expect(other.stderr).toMatch(/belongs to cluster=prod member=etcd-a, not prod\/etcd-b/);
    expect(existsSync(join(h.root, 'var/lib/etcd'))).toBe(false);
    const otherCluster = mount('etcd-a', [], 'staging');
    expect(otherCluster.code).toBe(4);
    expect(readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8')).toBe(marker);
  });

  it('refuses a copy of a member volume: its marker names another volume ID (issue 18)', () => {
    expect(mount('etcd-a', ['--allow-format']).code).toBe(0);
    mkdirSync(join(h.volume, 'data/member/snap'), { recursive: true });
    writeFileSync(join(h.volume, 'data/member/snap/db'), 'etcd-a data');
    rmMount(h.root);
    // The same directory seen as another volume: what an EBS snapshot restored with the same tags looks like.
    const copy = 'vol-0fedcba9876543210';
    symlinkSync(h.volume, join(h.root, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${copy.replace('-', '')}`));
    const r = run(h.root, 'etcd-mount.sh', ['--volume-id', copy, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(r.code).toBe(7);
    expect(r.stderr).toMatch(new RegExp(`${copy} is a copy of ${VOL}`));
    expect(existsSync(join(h.root, 'var/lib/etcd'))).toBe(false); // unmounted again
    expect(readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8')).toBe(`cluster=prod\nmember=etcd-a\nvolume=${VOL}\n`);
    expect(mount('etcd-a').code).toBe(0); // the original still mounts
  });

  it('records the member ID in the marker of its own mounted volume only, and every mount reports it (issue 18)', () => {
    expect(JSON.parse(mount('etcd-a', ['--allow-format']).stdout)).toMatchObject({ result: 'mounted', memberId: null });
    const rec = (member: string, id: string, vol = VOL) => run(h.root, 'etcd-mount.sh', ['--record-member-id', id, '--volume-id', vol, '--cluster', 'prod', '--member', member]);
    expect(rec('etcd-b', '8e9e05c52164694d').code).toBe(4); // not this volume's member
    expect(rec('etcd-a', '8e9e05c52164694d', 'vol-0fedcba9876543210').code).toBe(4); // not this volume
    expect(rec('etcd-a', '8E9E05C5;reboot').code).toBe(2); // not a member ID
    expect(readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8')).toBe(`cluster=prod\nmember=etcd-a\nvolume=${VOL}\n`);
    expect(JSON.parse(rec('etcd-a', '8e9e05c52164694d').stdout)).toMatchObject({ result: 'recorded', memberId: '8e9e05c52164694d' });
    // A blank volume that joined anew gets a new ID: it replaces the old one, never a second line.
    expect(rec('etcd-a', '91bc3c398fb3c146').code).toBe(0);
    expect(readFileSync(join(h.volume, '.quorum-keeper-volume'), 'utf8')).toBe(`cluster=prod\nmember=etcd-a\nvolume=${VOL}\nmemberId=91bc3c398fb3c146\n`);
    expect(JSON.parse(mount('etcd-a').stdout)).toMatchObject({ result: 'mounted', memberId: '91bc3c398fb3c146' });
    rmMount(h.root);
    expect(rec('etcd-a', '8e9e05c52164694d').code).toBe(6); // nothing mounted: nothing recorded
  });

  it('one mutating step at a time per host: a second mount waits for the host lock, and says so when it cannot get it', () => {
    mkdirSync(join(h.root, 'run/quorum-keeper'), { recursive: true });
    // Another step (e.g. the first copy of a retried SSM command) holds the lock for 3 s.
    const holder = spawn('flock', [join(h.root, 'run/quorum-keeper/host.lock'), 'sleep', '3'], { stdio: 'ignore' });
    try {
      spawnSync('sleep', ['0.3']);
      const blocked = mount('etcd-a', ['--allow-format'], 'prod', { QK_LOCK_WAIT_SEC: '1' });
      expect(blocked.code).toBe(6);
      expect(blocked.stderr).toMatch(/another Quorum Keeper step still holds .*host\.lock/);
      expect(readdirSync(h.volume)).toEqual([]); // nothing formatted while locked out
      const waited = mount('etcd-a', ['--allow-format'], 'prod', { QK_LOCK_WAIT_SEC: '20' });
      expect(waited.code).toBe(0);
      expect(JSON.parse(waited.stdout)).toMatchObject({ result: 'mounted', formatted: true });
    } finally {
      holder.kill();
    }
  });

  it('says so when the volume is not attached (after waiting QK_DEVICE_WAIT_SEC for its device)', () => {
    const r = run(h.root, 'etcd-mount.sh', ['--volume-id', 'vol-0fffffffffffffff0', '--cluster', 'prod', '--member', 'etcd-a'], { QK_DEVICE_WAIT_SEC: '1' });
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/no block device for vol-0fffffffffffffff0 after 1 s/);
  });

  it('waits for a device link that udev creates seconds after the attachment', async () => {
    const link = join(h.root, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOL.replace('-', '')}`);
    rmSync(link);
    setTimeout(() => symlinkSync(h.volume, link), 2000);
    const r = await runAsync(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format'], { QK_DEVICE_WAIT_SEC: '10' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ result: 'mounted', formatted: true });
  });
});

/** Like run(), but asynchronous: for scripts that talk to a server in this process. */
function runAsync(root: string, script: string, args: string[], env: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve) => {
    const child = spawn('bash', [join(HOST, script), ...args], {
      env: { PATH: process.env.PATH, QK_HOST_ROOT: root, QK_DEVICE_MODE: 'directory', QK_SERVICE_MODE: 'process', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The env for a host whose etcdctl sleeps `seconds` before each `words` command (a wrapper in QK_BIN_DIR). */
function slowEtcdctl(root: string, words: string, seconds: number): Record<string, string> {
  const bin = join(root, `opt/slow-${words.replace(/ /g, '-')}`);
  mkdirSync(bin, { recursive: true });
  const real = spawnSync('sh', ['-c', 'command -v etcdctl'], { encoding: 'utf8' }).stdout.trim();
  writeFileSync(join(bin, 'etcdctl'), `#!/usr/bin/env bash\nif [[ " $* " == *" ${words} "* ]]; then sleep ${seconds}; fi\nexec ${real} "$@"\n`);
  chmodSync(join(bin, 'etcdctl'), 0o755);
  return { QK_BIN_DIR: bin };
}

function rmMount(root: string): void {
  spawnSync('rm', ['-f', join(root, 'var/lib/etcd')]);
}

describe('etcd-member.sh and etcd-snapshot.sh with a real etcd', () => {
  let h: ReturnType<typeof makeHost>;
  let peer: number;
  let client: number;
  beforeEach(async () => {
    h = makeHost();
    peer = await freePort();
    client = await freePort();
    writeFileSync(join(h.root, 'etc/quorum-keeper/host.env'), `QK_HOST_IP=127.0.0.1\nQK_ETCD_PEER_PORT=${peer}\nQK_ETCD_CLIENT_PORT=${client}\n`);
  });
  afterEach(() => {
    run(h.root, 'etcd-member.sh', ['stop']);
    removeDir(h.root);
    removeDir(h.volume);
  });
  const start = () => run(h.root, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', `etcd-a=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new', '--token', 't1']);

  it('refuses to start etcd when no verified volume is mounted (it would use the root disk)', () => {
    const r = start();
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/no verified etcd volume is mounted/);
    expect(existsSync(join(h.root, 'var/lib/etcd'))).toBe(false);
  });

  it('refuses an initial cluster that does not list this host at its own URL', () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    const r = run(h.root, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', 'etcd-a=http://127.0.0.1:1', '--initial-cluster-state', 'new']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not list this host/);
  });

  it('starts etcd on the mounted volume, reports status, is idempotent, and stops it', () => {
    expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']).code).toBe(0);
    const started = start();
    expect(started.code).toBe(0);
    const st = JSON.parse(started.stdout) as { running: boolean; healthy: boolean; pid: number; hasData: boolean };
    expect(st).toMatchObject({ running: true, healthy: true, peerUrl: `http://127.0.0.1:${peer}`, hasData: true });
    expect(existsSync(join(h.volume, 'data/member/snap/db'))).toBe(true);
    const again = JSON.parse(start().stdout) as { pid: number };
    expect(again.pid).toBe(st.pid);
    const stopped = JSON.parse(run(h.root, 'etcd-member.sh', ['stop']).stdout) as { running: boolean };
    expect(stopped.running).toBe(false);
    expect(isAlive(st.pid)).toBe(false);
  });

  it('"has data" means a write-ahead log: a backend left by a failed first start is no data, and start sets it aside (never deletes it)', () => {
    expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']).code).toBe(0);
    // What a learner whose first start failed leaves: member/snap/db, no member/wal.
    mkdirSync(join(h.volume, 'data/member/snap'), { recursive: true });
    writeFileSync(join(h.volume, 'data/member/snap/db'), 'a backend without a log');
    const remount = JSON.parse(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a']).stdout) as { hasData: boolean };
    expect(remount.hasData).toBe(false);
    expect((JSON.parse(run(h.root, 'etcd-member.sh', ['status']).stdout) as { hasData: boolean }).hasData).toBe(false);
    const started = start();
    expect(started.code).toBe(0);
    expect(started.stderr).toMatch(/set aside \/var\/lib\/etcd\/data\/member \(a backend without a write-ahead log\)/);
    const aside = readdirSync(h.volume).find((d) => d.startsWith('data.nowal-'))!;
    expect(readFileSync(join(h.volume, aside, 'member/snap/db'), 'utf8')).toBe('a backend without a log');
    // etcd started a fresh member: now there is a log, and the data counts.
    expect(JSON.parse(started.stdout)).toMatchObject({ running: true, healthy: true, hasData: true });
    run(h.root, 'etcd-member.sh', ['stop']);
  });

  it('start installs the boot guard: a drop-in so the init system never starts etcd without its verified volume (systemd mode, issue 18)', () => {
    expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']).code).toBe(0);
    // A systemctl that records its calls; the unit never comes up, so start ends "exited during start-up".
    const bin = join(h.root, 'opt/fake-systemd');
    mkdirSync(bin, { recursive: true });
    writeFileSync(join(bin, 'systemctl'), `#!/usr/bin/env bash\nprintf '%s\\n' "$*" >>${join(h.root, 'systemctl.calls')}\n[[ "$1" != is-active ]]\n`);
    chmodSync(join(bin, 'systemctl'), 0o755);
    const systemd = { QK_SERVICE_MODE: 'systemd', PATH: `${bin}:${process.env.PATH}` };
    const args = ['start', '--name', 'etcd-a', '--initial-cluster', `etcd-a=http://127.0.0.1:${peer}`, '--initial-cluster-state', 'new'];
    expect(run(h.root, 'etcd-member.sh', args, systemd).stderr).toMatch(/installed the boot guard \/etc\/systemd\/system\/etcd\.service\.d\/10-quorum-keeper\.conf/);
    // It also decides how the unit runs etcd: this host's config file, with no start timeout (a
    // Type=notify etcd is READY only once it has joined its cluster; issue 20).
    const etcdBin = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' }).stdout.trim();
    expect(readFileSync(join(h.root, 'etc/systemd/system/etcd.service.d/10-quorum-keeper.conf'), 'utf8')).toBe([
      '# Written by Quorum Keeper (etcd-member.sh start): etcd starts only on its verified volume.',
      '[Unit]', 'RequiresMountsFor=/var/lib/etcd', 'ConditionPathExists=/var/lib/etcd/.quorum-keeper-volume',
      '[Service]', 'ExecStart=', `ExecStart=${etcdBin} --config-file ${h.root}/etc/quorum-keeper/etcd.conf.yml`, 'TimeoutStartSec=infinity', '',
    ].join('\n'));
    // Idempotent: a second start neither rewrites it nor reloads systemd again. The start is
    // queued (--no-block): a start job of a Type=notify unit lasts until etcd joins its cluster.
    expect(run(h.root, 'etcd-member.sh', args, systemd).stderr).not.toMatch(/installed the boot guard/);
    const calls = readFileSync(join(h.root, 'systemctl.calls'), 'utf8').split('\n').filter((l) => l && !l.startsWith('is-active'));
    // The unit is enabled (started at boot: safe behind the guard, and how a rebooted master's member comes back).
    // Enabled on every start (idempotent): a master whose guard predates this, or whose enable failed once.
    expect(calls).toEqual(['daemon-reload', 'enable etcd.service', 'start --no-block etcd', 'enable etcd.service', 'start --no-block etcd']);
  });

  it('guard (adopt): the boot guard alone on etcd\'s unit, reported by status; a later start writes the full drop-in, and guard never downgrades it', () => {
    expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']).code).toBe(0);
    const dropIn = join(h.root, 'etc/systemd/system/etcd.service.d/10-quorum-keeper.conf');
    const status = () => (JSON.parse(run(h.root, 'etcd-member.sh', ['status']).stdout) as { guard: string }).guard;
    expect(status()).toBe('none');
    const g = run(h.root, 'etcd-member.sh', ['guard']);
    expect(g.code).toBe(0);
    expect(JSON.parse(g.stdout)).toEqual({ result: 'installed', guard: 'unit' });
    expect(readFileSync(dropIn, 'utf8')).toBe([
      '# Written by Quorum Keeper (etcd-member.sh guard, adopt): etcd starts only on its verified volume.',
      '[Unit]', 'RequiresMountsFor=/var/lib/etcd', 'ConditionPathExists=/var/lib/etcd/.quorum-keeper-volume', '',
    ].join('\n'));
    expect(status()).toBe('unit');
    expect(start().code).toBe(0);
    expect(readFileSync(dropIn, 'utf8')).toMatch(/\[Service\]\nExecStart=\nExecStart=.* --config-file /);
    expect(status()).toBe('full');
    expect(JSON.parse(run(h.root, 'etcd-member.sh', ['guard']).stdout)).toEqual({ result: 'present', guard: 'full' });
    run(h.root, 'etcd-member.sh', ['stop']);
  });

  it('prepares a verified, compressed snapshot, then uploads it with signed checksum/encryption headers', async () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(start().code).toBe(0);
    spawnSync('etcdctl', [`--endpoints=http://127.0.0.1:${client}`, 'put', 'k', 'v'], { env: { PATH: process.env.PATH } });
    // A slow trial restore (as on a big DB): it must outlive prepare and hold the upload's verdict.
    const slow = slowEtcdctl(h.root, 'restore', 2);
    const prep = run(h.root, 'etcd-snapshot.sh', ['prepare', '--work-dir', '/var/lib/qk-snapshots'], slow);
    expect(prep.stderr).toBe('');
    expect(prep.code).toBe(0);
    const p = JSON.parse(prep.stdout) as { file: string; sha256: string; sha256Base64: string; compressor: string; size: number; status: { revision: number } };
    expect(p.compressor).toBe(spawnSync('sh', ['-c', 'command -v zstd']).status === 0 ? 'zstd' : 'gzip');
    expect(p.status.revision).toBeGreaterThanOrEqual(2);
    expect(readdirSync(join(h.root, 'var/lib/qk-snapshots'))).toContain(p.file);

    const received: { body: Buffer; headers: Record<string, string | string[] | undefined>; url: string | undefined }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ body: Buffer.concat(chunks), headers: req.headers, url: req.url });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/prod/snap.db.zst?X-Amz-Signature=abc&X-Amz-Credential=a%2Fb`;
    const headers = [`x-amz-checksum-sha256: ${p.sha256Base64}`, 'x-amz-server-side-encryption: aws:kms', 'x-amz-meta-revision: 5'].join('\n');
    const r = await runAsync(h.root, 'etcd-snapshot.sh', ['upload', '--work-dir', '/var/lib/qk-snapshots', '--file', p.file,
      '--upload-url-b64', Buffer.from(url).toString('base64url'), '--headers-b64', Buffer.from(headers).toString('base64url')], slow);
    server.close();
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(received).toHaveLength(1);
    const got = received[0]!;
    expect(got.url).toBe('/bucket/prod/snap.db.zst?X-Amz-Signature=abc&X-Amz-Credential=a%2Fb');
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(p.sha256);
    expect(got.headers['x-amz-checksum-sha256']).toBe(createHash('sha256').update(got.body).digest('base64'));
    expect(got.headers['x-amz-server-side-encryption']).toBe('aws:kms');
    expect(got.headers['x-amz-meta-revision']).toBe('5');
    expect(got.body.length).toBe(p.size);
    // It waited for the (slow) trial restore's verdict before sending, and leaves nothing behind.
    const uploaded = JSON.parse(r.stdout) as { verifyMs: number };
    expect(uploaded).toMatchObject({ result: 'uploaded', verified: true });
    expect(uploaded.verifyMs).toBeGreaterThanOrEqual(2000);
    expect(readdirSync(join(h.root, 'var/lib/qk-snapshots'))).toEqual([]);
  });

  it('prepare reads the raw snapshot even when the trial restore has finished before its snapshot status began (each removes only its own link)', async () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(start().code).toBe(0);
    spawnSync('etcdctl', [`--endpoints=http://127.0.0.1:${client}`, 'put', 'k', 'v'], { env: { PATH: process.env.PATH } });
    // A busy master: prepare's `snapshot status` starts a second late; the small DB's trial restore is done by then.
    const dir = join(h.root, 'var/lib/qk-snapshots');
    const prep = run(h.root, 'etcd-snapshot.sh', ['prepare', '--work-dir', '/var/lib/qk-snapshots'], slowEtcdctl(h.root, 'snapshot status', 1.5));
    expect(prep.stderr).toBe('');
    expect(prep.code).toBe(0);
    const p = JSON.parse(prep.stdout) as { file: string; status: { revision: number } };
    expect(p.status.revision).toBeGreaterThanOrEqual(2);
    const verdict = join(dir, p.file.replace(/\.db\.(zst|gz)$/, '.verify'));
    for (let i = 0; i < 100 && !existsSync(verdict); i++) await new Promise((r) => setTimeout(r, 100));
    expect(JSON.parse(readFileSync(verdict, 'utf8'))).toMatchObject({ ok: true });
    // Only the compressed file and the verdict remain: both raw names are gone.
    expect(readdirSync(dir).sort()).toEqual([p.file, p.file.replace(/\.db\.(zst|gz)$/, '.verify')].sort());
    expect(run(h.root, 'etcd-snapshot.sh', ['discard', '--work-dir', '/var/lib/qk-snapshots', '--file', p.file]).code).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('does not upload a snapshot whose trial restore failed, and removes it', async () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(start().code).toBe(0);
    const dir = join(h.root, 'var/lib/qk-snapshots');
    const p = JSON.parse(run(h.root, 'etcd-snapshot.sh', ['prepare', '--work-dir', '/var/lib/qk-snapshots']).stdout) as { file: string };
    const verdict = join(dir, p.file.replace(/\.db\.(zst|gz)$/, '.verify'));
    for (let i = 0; i < 100 && !existsSync(verdict); i++) await new Promise((r) => setTimeout(r, 100));
    // The verifier's verdict, as a damaged snapshot would have produced it.
    writeFileSync(verdict, '{"ok":false,"error":"snapshot file integrity check failed"}\n');
    let requests = 0;
    const server = createServer((_req, res) => {
      requests++;
      res.writeHead(200).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/bucket/k`;
    const r = await runAsync(h.root, 'etcd-snapshot.sh', ['upload', '--work-dir', '/var/lib/qk-snapshots', '--file', p.file,
      '--upload-url-b64', Buffer.from(url).toString('base64url')]);
    server.close();
    expect(r.code).toBe(8); // QK_EXIT_CORRUPT: the flow tells a damaged snapshot by this code alone
    expect(r.stderr).toMatch(/trial restore failed: the snapshot is corrupt.*integrity check failed/);
    expect(requests).toBe(0);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses headers outside the allow-list and keeps the prepared file', () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(start().code).toBe(0);
    const p = JSON.parse(run(h.root, 'etcd-snapshot.sh', ['prepare', '--work-dir', '/var/lib/qk-snapshots']).stdout) as { file: string };
    for (const header of ['authorization: AWS4 x', 'x-amz-meta-x: $(reboot)', 'host: evil.example']) {
      const r = run(h.root, 'etcd-snapshot.sh', ['upload', '--work-dir', '/var/lib/qk-snapshots', '--file', p.file,
        '--upload-url-b64', Buffer.from('http://127.0.0.1:1/b/k').toString('base64url'), '--headers-b64', Buffer.from(header).toString('base64url')]);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/invalid header/);
    }
    expect(readdirSync(join(h.root, 'var/lib/qk-snapshots'))).toContain(p.file);
    expect(run(h.root, 'etcd-snapshot.sh', ['discard', '--work-dir', '/var/lib/qk-snapshots', '--file', p.file]).code).toBe(0);
    expect(readdirSync(join(h.root, 'var/lib/qk-snapshots'))).toEqual([]);
  });
  it('preflight says, read-only, whether this master can take a restore: its verified volume, its tools, room for the snapshot', () => {
    const preflight = (size: number, raw: number) => {
      const r = run(h.root, 'etcd-restore.sh', ['preflight', '--work-dir', '/var/lib/qk-snapshots', '--size', String(size), '--raw-size', String(raw), '--compressor', 'gzip']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      return JSON.parse(r.stdout) as { ready: boolean; problems: string[] };
    };
    // No volume mounted yet: not ready, and nothing was created.
    expect(preflight(1000, 4000)).toMatchObject({ ready: false, problems: [expect.stringMatching(/no verified etcd volume is mounted at \/var\/lib\/etcd/)] });
    expect(existsSync(join(h.root, 'var/lib/qk-snapshots'))).toBe(false);
    expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']).code).toBe(0);
    const ok = preflight(1000, 4000);
    expect(ok).toMatchObject({ ready: true, problems: [] });
    // Whether this master's tool can bump the restored revision: etcdutl 3.5.10+, not etcd 3.4's etcdctl.
    expect(ok).toHaveProperty('canBump', !/^etcdctl version: 3\.4\./m.test(spawnSync('etcdctl', ['version'], { encoding: 'utf8' }).stdout));
    // A snapshot larger than any disk here: both places are said, in MiB.
    const big = preflight(2 ** 45, 2 ** 45);
    expect(big.ready).toBe(false);
    expect(big.problems).toEqual([
      expect.stringMatching(/^work dir \/var\/lib\/qk-snapshots: \d+ MiB free, \d+ MiB needed/),
      expect.stringMatching(/^volume at \/var\/lib\/etcd: \d+ MiB free, \d+ MiB needed/),
    ]);
  });

  it('restores from a downloaded snapshot: checksum first, old data set aside, idempotent per token, rollback', async () => {
    run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', 'etcd-a', '--allow-format']);
    expect(start().code).toBe(0);
    const put = (k: string) => spawnSync('etcdctl', [`--endpoints=http://127.0.0.1:${client}`, 'put', k, 'v'], { env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
    put('before-1');
    put('before-2');
    const p = JSON.parse(run(h.root, 'etcd-snapshot.sh', ['prepare', '--work-dir', '/var/lib/qk-snapshots']).stdout) as { file: string; sha256: string; compressor: string; keys: number; status: { revision: number } };
    expect(p.keys).toBe(2);
    put('after-snapshot');
    const snapshotFile = readFileSync(join(h.root, 'var/lib/qk-snapshots', p.file));
    const server = createServer((_req, res) => res.writeHead(200).end(snapshotFile));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const url = Buffer.from(`http://127.0.0.1:${(server.address() as AddressInfo).port}/b/k?X-Amz-Signature=abc`).toString('base64url');
      const cluster = `etcd-a=http://127.0.0.1:${peer}`;
      const restore = (sha: string, token: string) => runAsync(h.root, 'etcd-restore.sh', ['restore', '--work-dir', '/var/lib/qk-restore', '--url-b64', url,
        '--sha256', sha, '--compressor', p.compressor, '--name', 'etcd-a', '--initial-cluster', cluster, '--token', token]);

      // etcd still running: refused.
      expect((await restore(p.sha256, 'r1')).stderr).toMatch(/etcd is running/);
      run(h.root, 'etcd-member.sh', ['stop']);
      const inspected = JSON.parse(run(h.root, 'etcd-restore.sh', ['inspect']).stdout) as { running: boolean; hasData: boolean; revision: number };
      expect(inspected).toMatchObject({ running: false, hasData: true });
      expect(inspected.revision).toBe(p.status.revision + 1);
      const before = tree(h.volume);

      // A download whose SHA-256 differs from the backup's metadata: nothing changes.
      const bad = await restore('0'.repeat(64), 'r1');
      expect(bad.code).toBe(8); // QK_EXIT_CORRUPT
      expect(bad.stderr).toMatch(/checksum mismatch/);
      expect(tree(h.volume)).toEqual(before);

      const ok = await restore(p.sha256, 'r1');
      expect(ok.stderr).toBe('');
      expect(JSON.parse(ok.stdout)).toMatchObject({ result: 'restored', revision: p.status.revision, asideDir: '/var/lib/etcd/data.pre-restore-r1' });
      expect(existsSync(join(h.volume, 'data.pre-restore-r1/member/snap/db'))).toBe(true);
      expect(readdirSync(join(h.root, 'var/lib/qk-restore'))).toEqual([]);
      expect(JSON.parse((await restore(p.sha256, 'r1')).stdout)).toMatchObject({ result: 'already-restored' });

      // The restored member starts as a new cluster with the snapshot's keys only.
      expect(run(h.root, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', cluster, '--initial-cluster-state', 'new', '--token', 'r1']).code).toBe(0);
      const v = JSON.parse(run(h.root, 'etcd-restore.sh', ['verify', '--revision', String(p.status.revision)]).stdout) as { revision: number; keysAtRevision: number };
      expect(v).toEqual({ revision: p.status.revision, keysAtRevision: 2 });

      // Rollback refuses while etcd runs, then brings the pre-restore data (with the later key) back.
      expect(run(h.root, 'etcd-restore.sh', ['rollback', '--token', 'r1']).code).toBe(6);
      run(h.root, 'etcd-member.sh', ['stop']);
      expect(run(h.root, 'etcd-restore.sh', ['rollback', '--token', 'r1']).code).toBe(0);
      expect(existsSync(join(h.volume, 'data.failed-restore-r1/member'))).toBe(true);
      expect(start().code).toBe(0);
      const got = spawnSync('etcdctl', [`--endpoints=http://127.0.0.1:${client}`, 'get', 'after-snapshot', '--print-value-only'], { encoding: 'utf8', env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
      expect(got.stdout.trim()).toBe('v');
    } finally {
      server.close();
    }
  });
});

describe('etcdctl.sh passes every invocation the etcd layer builds', () => {
  const host = useHost();
  it('accepts each builder argv and hands it to etcdctl/etcdutl unchanged', () => {
    const h = host();
    // A stand-in etcdctl/etcdutl that prints its argv, one per line.
    const bin = join(h.root, 'fakebin');
    mkdirSync(bin);
    for (const tool of ['etcdctl', 'etcdutl']) writeFileSync(join(bin, tool), `#!/bin/sh\necho ${tool}\nfor a in "$@"; do echo "$a"; done\n`, { mode: 0o755 });
    const conn = { endpoints: ['http://10.0.1.5:2379', 'http://10.0.2.5:2379'] };
    const id = memberIdFromHex('fd46fc05ad5060e4');
    const invocations: EtcdInvocation[] = [
      etcdctl.memberList(conn), etcdctl.memberAdd(conn, 'etcd-a', ['http://10.0.1.9:2380'], { learner: true }), etcdctl.memberPromote(conn, id),
      etcdctl.memberRemove(conn, id), etcdctl.memberUpdate(conn, id, ['http://10.0.1.9:2380']), etcdctl.endpointStatus(conn, { cluster: true }),
      etcdctl.endpointHealth(conn, { cluster: false }), etcdctl.moveLeader(conn, id), etcdctl.alarmList(conn), etcdctl.alarmDisarm(conn),
      etcdctl.defrag({ endpoints: ['http://10.0.1.5:2379'] }), etcdctl.snapshotSave({ endpoints: ['http://10.0.1.5:2379'] }, '/var/tmp/s.db'),
      snapshotOffline.status('etcdctl', '/var/tmp/s.db'), snapshotOffline.status('etcdutl', '/var/tmp/s.db'), snapshotOffline.probeEtcdutl(),
      snapshotOffline.restore('etcdutl', '/var/tmp/s.db', { name: 'etcd-a', dataDir: '/var/lib/etcd/r', token: 't', initialCluster: [{ name: 'etcd-a', peerUrls: ['http://10.0.1.5:2380'] }], advertisePeerUrls: ['http://10.0.1.5:2380'] }),
    ];
    for (const inv of invocations) {
      const args = inv.bin === 'etcdutl' ? ['--tool', 'etcdutl', ...inv.args] : inv.args;
      const r = run(h.root, 'etcdctl.sh', args, { QK_BIN_DIR: bin });
      expect({ args: inv.args.join(' '), code: r.code, stderr: r.stderr }).toEqual({ args: inv.args.join(' '), code: 0, stderr: '' });
      const printed = r.stdout.trim().split('\n');
      expect(printed[0]).toBe(inv.bin);
      // The script may prepend a default endpoint / TLS flags, never change ours.
      expect(printed.slice(-inv.args.length)).toEqual(inv.args);
    }
  });
});

describe('etcd-member.sh stop --if-quorum-without-me: the host checks quorum at the last moment', () => {
  const hosts: Array<ReturnType<typeof makeHost> & { peer: number; client: number; name: string }> = [];
  afterEach(() => {
    for (const h of hosts) {
      run(h.root, 'etcd-member.sh', ['stop']);
      removeDir(h.root);
      removeDir(h.volume);
    }
    hosts.length = 0;
  });

  it('stops a member whose peers still make a quorum without it; refuses (exit 10, etcd left running) the one whose stop would lose quorum', async () => {
    for (const name of ['etcd-a', 'etcd-b', 'etcd-c']) {
      const h = { ...makeHost(), peer: await freePort(), client: await freePort(), name };
      writeFileSync(join(h.root, 'etc/quorum-keeper/host.env'), `QK_HOST_IP=127.0.0.1\nQK_ETCD_PEER_PORT=${h.peer}\nQK_ETCD_CLIENT_PORT=${h.client}\n`);
      expect(run(h.root, 'etcd-mount.sh', ['--volume-id', VOL, '--cluster', 'prod', '--member', name, '--allow-format']).code).toBe(0);
      hosts.push(h);
    }
    const initial = hosts.map((h) => `${h.name}=http://127.0.0.1:${h.peer}`).join(',');
    // All three start together (each start waits for its member to come up).
    const started = await Promise.all(hosts.map((h) => new Promise<number | null>((resolve) => {
      const p = spawn('bash', [join(HOST, 'etcd-member.sh'), 'start', '--name', h.name, '--initial-cluster', initial, '--initial-cluster-state', 'new'], {
        env: { PATH: process.env.PATH, QK_HOST_ROOT: h.root, QK_DEVICE_MODE: 'directory', QK_SERVICE_MODE: 'process' }, stdio: 'ignore',
      });
      p.on('exit', (code) => resolve(code));
    })));
    expect(started).toEqual([0, 0, 0]);
    const status = (h: (typeof hosts)[number]) => JSON.parse(run(h.root, 'etcd-member.sh', ['status']).stdout) as { running: boolean; healthy: boolean };
    for (let i = 0; i < 50 && !hosts.every((h) => status(h).healthy); i++) await new Promise((r) => setTimeout(r, 200));

    const a = run(hosts[0]!.root, 'etcd-member.sh', ['stop', '--if-quorum-without-me']);
    expect(a.code).toBe(0);
    expect(a.stderr).toMatch(/stopping etcd: 2 of the 2 other voters follow the leader; quorum of 3 voters is 2/);
    expect(status(hosts[0]!).running).toBe(false);

    const b = run(hosts[1]!.root, 'etcd-member.sh', ['stop', '--if-quorum-without-me']);
    expect(b.code).toBe(10);
    expect(b.stderr).toMatch(/etcd NOT stopped: stopping it now would lose quorum \(1 of the 2 other voters follow the leader; quorum of 3 voters is 2\)/);
    expect(status(hosts[1]!)).toMatchObject({ running: true, healthy: true });
    // Without the flag (the restore, an operator) it stops as before.
    expect(run(hosts[1]!.root, 'etcd-member.sh', ['stop']).code).toBe(0);
  });
});
