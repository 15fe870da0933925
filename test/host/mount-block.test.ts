/**
 * etcd-mount.sh in its production mode (QK_DEVICE_MODE=block): real blkid, mkfs.ext4 and
 * mount on a file-backed "EBS device". The never-reformat assertions need no mount at all;
 * the format-and-mount path needs loop mounts (root with /dev/loop*): where they are missing it is
 * reported skipped, and in CI (which has them) it runs and fails rather than skip.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, createHash } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempDir, removeDir } from '../../sandbox/procs';

const SCRIPT = join(__dirname, '..', '..', 'host', 'etcd-mount.sh');
const VOL = 'vol-0abcdef0123456789';
const hasTools = ['blkid', 'mkfs.ext4', 'findmnt', 'losetup'].every((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status === 0);

function loopMountWorks(dir: string): boolean {
  if (process.getuid?.() !== 0 || !hasTools) return false;
  const img = join(dir, 'probe.img');
  const mnt = join(dir, 'probe-mnt');
  mkdirSync(mnt);
  spawnSync('truncate', ['-s', '8M', img]);
  spawnSync('mkfs.ext4', ['-q', img]);
  const ok = spawnSync('mount', [img, mnt]).status === 0;
  if (ok) spawnSync('umount', [mnt]);
  return ok;
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const uuid = (file: string) => spawnSync('blkid', ['-p', '-s', 'UUID', '-o', 'value', file], { encoding: 'utf8' }).stdout.trim();

/**
 * Whether this machine can loop-mount, probed once. Where it cannot, the tests that need it are
 * reported as skipped (never as passed); in CI, which runs as root with loop devices, they run
 * and fail with the reason instead of being skipped.
 */
const canLoopMount = (() => {
  const dir = makeTempDir('blockprobe');
  try {
    return loopMountWorks(dir);
  } finally {
    removeDir(dir);
  }
})();
const needsLoop = canLoopMount || process.env.CI ? it : it.skip;

(hasTools || process.env.CI ? describe : describe.skip)('etcd-mount.sh on block devices', () => {

  let root: string;
  /** What the by-id link points at: a loop block device where possible, else the image file. */
  let device: string;
  let loop: string | null = null;
  let canMount = false;

  beforeEach(() => {
    root = makeTempDir('blockhost');
    canMount = canLoopMount;
    const image = join(root, 'ebs.img');
    spawnSync('truncate', ['-s', '32M', image]);
    device = image;
    loop = null;
    if (canMount) {
      const r = spawnSync('losetup', ['-f', '--show', image], { encoding: 'utf8' });
      if (r.status === 0) loop = device = r.stdout.trim();
      else canMount = false;
    }
    mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
    symlinkSync(device, join(root, `dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOL.replace('-', '')}`));
  });
  afterEach(() => {
    const target = join(root, 'var/lib/etcd');
    if (spawnSync('findmnt', ['--mountpoint', target]).status === 0) spawnSync('umount', [target]);
    if (loop) spawnSync('losetup', ['-d', loop]);
    removeDir(root);
  });

  const mount = (extra: string[], member = 'etcd-a') =>
    spawnSync('bash', [SCRIPT, '--volume-id', VOL, '--cluster', 'prod', '--member', member, ...extra], {
      encoding: 'utf8', env: { PATH: process.env.PATH, QK_HOST_ROOT: root, QK_DEVICE_MODE: 'block' },
    });

  it('never formats a device that already has a filesystem, even with --allow-format', () => {
    spawnSync('mkfs.ext4', ['-q', '-L', 'existing', device]);
    const before = uuid(device);
    expect(before).not.toBe('');
    mount(['--allow-format']);
    expect(uuid(device)).toBe(before);
  });

  it('never formats a device holding unrecognised data (no signature, but not zero)', () => {
    const fd = openSync(device, 'r+');
    writeSync(fd, randomBytes(64 * 1024), 0, 64 * 1024, 4096);
    closeSync(fd);
    const before = sha(device);
    const r = mount(['--allow-format']);
    expect(sha(device)).toBe(before);
    expect(r.status).not.toBe(0);
  });

  it('refuses to format a blank device without --allow-format', () => {
    const before = sha(device);
    const r = mount([]);
    expect(r.status).toBe(3);
    expect(sha(device)).toBe(before);
  });

  needsLoop('formats a blank device when allowed, mounts it, writes the marker; refuses another member', () => {
    expect(loop).not.toBeNull(); // a loop device backs the by-id link: the mount below is a real one
    const r = mount(['--allow-format']);
    expect(r.stderr).toMatch(/formatting blank device/);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ formatted: true, hasData: false });
    expect(uuid(device)).not.toBe('');
    expect(readFileSync(join(root, 'var/lib/etcd/.quorum-keeper-volume'), 'utf8')).toMatch(/^cluster=prod\nmember=etcd-a\n/);
    // Mounted again at boot by its volume-ID link; a systemd that does not answer here (no init in
    // this container) is said, and never fails the mount.
    expect(readFileSync(join(root, 'etc/systemd/system/var-lib-etcd.mount'), 'utf8')).toContain(`What=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${VOL.replace('-', '')}\n`);
    // Idempotent while mounted.
    expect(mount(['--allow-format']).status).toBe(0);
    spawnSync('umount', [join(root, 'var/lib/etcd')]);
    const other = mount(['--allow-format'], 'etcd-b');
    expect(other.status).toBe(4);
    expect(spawnSync('findmnt', ['--mountpoint', join(root, 'var/lib/etcd')]).status).not.toBe(0);
    expect(existsSync(join(root, 'var/lib/etcd/.quorum-keeper-volume'))).toBe(false);
  });
});
