/**
 * Scheduled backups end to end in the sandbox: real etcd (3 members, 50,000 keys), the host
 * scripts over SSM, S3 and KMS in moto (with S3's checksum check added by the sandbox).
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backupKey, listBackups, presignUpload } from '../../lib/aws/backups';
import { backupCluster, pruneBackups } from '../../lib/flows/backup';
import { decideRetention, DEFAULT_RETENTION } from '../../lib/domain/retention';
import type { Clock } from '../../lib/clock';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, receivedAlerts, sandboxBackupDeps, sandboxBackupSettings,
} from '../../sandbox/control';
import { corruptSnapshots } from '../../sandbox/faults';
import { countKeys, putKeysBulk } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';

jest.setTimeout(240_000);

const HOUR = 3_600_000;

describe('scheduled etcd backup', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let cluster: SandboxCluster;
  const steps: string[] = [];

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    destroyClients(c);
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    ctl = await provisionControl(sandbox);
    b = await provisionBackups(sandbox);
    steps.length = 0;
  });
  afterEach(() => {
    destroyControl(ctl);
    destroyBackups(b);
  });

  const deps = (clock?: Clock) => ({
    ...sandboxBackupDeps(c, ctl, b, (e) => steps.push(`${e.step}:${e.status} ${e.detail}`)),
    ...(clock ? { clock } : {}),
  });
  const workDirFiles = () => cluster.members.flatMap((m) => {
    const d = join(sandbox.host(m.instanceId).root, 'var/lib/quorum-keeper/snapshots');
    return existsSync(d) ? readdirSync(d) : [];
  });

  it('backs up 50,000 keys from a follower: encrypted with the configured key, checksum verified, metadata complete, restorable', async () => {
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/bulk/', 50_000);
    expect(await countKeys(cluster.members[0]!.clientUrl, '/registry/bulk/')).toBe(50_000);

    const out = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(out.failure).toBeUndefined();
    expect(out.result).toBe('uploaded');
    expect(out.role).toBe('follower');
    expect(out.keys).toBe(50_000);
    expect(out.stale).toBe(false);
    expect(out.newestGoodAgeSec).toBeLessThan(60);

    const listed = await b.s3.send(new ListObjectsV2Command({ Bucket: b.store.bucket }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual([out.key]);
    expect(out.key).toMatch(/^etcd-backups\/prod\/\d{8}T\d{6}Z-etcd-[abc]\.db\.(zst|gz)$/);
    const head = await b.s3.send(new HeadObjectCommand({ Bucket: b.store.bucket, Key: out.key, ChecksumMode: 'ENABLED' }));
    expect(head.ServerSideEncryption).toBe('aws:kms');
    expect(head.SSEKMSKeyId).toBe(b.kmsKeyArn);
    expect(head.Metadata).toMatchObject({
      cluster: 'prod', member: out.member, revision: String(out.revision), keys: '50000', compressor: out.compressor,
      size: String(out.size), 'raw-size': String(out.rawSize), verified: 'trial-restore',
    });
    // The etcdctl the masters run (3.4 or 3.5, QK_ETCD_VERSION).
    expect(head.Metadata?.['etcd-version']).toBe(/^etcdctl version: (\S+)/m.exec(spawnSync('etcdctl', ['version'], { encoding: 'utf8' }).stdout)?.[1]);

    // The bytes in S3 are the snapshot: their SHA-256 is the one S3 checked and the metadata
    // records, and the decompressed file is an etcd snapshot at the recorded revision.
    const body = Buffer.from(await (await b.s3.send(new GetObjectCommand({ Bucket: b.store.bucket, Key: out.key }))).Body!.transformToByteArray());
    expect(body.length).toBe(out.size);
    expect(createHash('sha256').update(body).digest('hex')).toBe(head.Metadata?.sha256);
    expect(head.ChecksumSHA256).toBe(createHash('sha256').update(body).digest('base64'));
    const dir = mkdtempSync(join(tmpdir(), 'qk-backup-'));
    try {
      writeFileSync(join(dir, 'snap.db.x'), body);
      const unpack = out.compressor === 'zstd' ? ['zstd', ['-q', '-d', join(dir, 'snap.db.x'), '-o', join(dir, 'snap.db')]] as const : ['sh', ['-c', `gzip -dc '${join(dir, 'snap.db.x')}' > '${join(dir, 'snap.db')}'`]] as const;
      expect(spawnSync(unpack[0], [...unpack[1]]).status).toBe(0);
      const st = spawnSync('etcdctl', ['snapshot', 'status', join(dir, 'snap.db'), '-w', 'json'], { encoding: 'utf8', env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
      expect((JSON.parse(st.stdout) as { revision: number }).revision).toBe(out.revision);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // Nothing left behind on the masters.
    expect(workDirFiles()).toEqual([]);
    expect(await receivedAlerts(ctl)).toEqual([]);
  });

  it('a corrupted snapshot is detected by the trial restore, not uploaded, and raises one alert', async () => {
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/bulk/', 5_000);
    for (const m of cluster.members) corruptSnapshots(sandbox.host(m.instanceId));

    const out = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(out.result).toBe('failed');
    expect(out.failure?.step).toBe('verify');
    // `snapshot status` accepted the damaged file; only the trial restore caught it.
    expect(out.failure?.message).toMatch(/trial restore failed/);
    expect((await b.s3.send(new ListObjectsV2Command({ Bucket: b.store.bucket }))).KeyCount ?? 0).toBe(0);
    expect(workDirFiles()).toEqual([]);
    // No good backup exists at all, so the freshness check complains too.
    expect(out.stale).toBe(true);
    const alerts = await receivedAlerts(ctl);
    expect(alerts.filter((a) => a.includes('FAILED VERIFICATION'))).toHaveLength(1);
    expect(alerts.filter((a) => a.includes('stale'))).toHaveLength(1);

    // The same failure again within the window: no second message.
    await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(await receivedAlerts(ctl)).toEqual([]);
  });

  it('S3 refuses an upload whose body does not match the signed SHA-256 (BadDigest), and stores nothing', async () => {
    const body = Buffer.from('snapshot bytes that changed after they were hashed');
    const claimed = createHash('sha256').update('the bytes that were hashed').digest();
    const key = backupKey(b.store, 'prod', 'etcd-a', new Date(), 'zstd');
    const p = await presignUpload(b.s3, b.store, key, {
      cluster: 'prod', member: 'etcd-a', revision: 1, keys: 0, etcdVersion: '3.4.23', rawSize: body.length, size: body.length,
      sha256: claimed.toString('hex'), compressor: 'zstd', takenAt: new Date(),
    }, claimed.toString('base64'));
    const res = await fetch(p.url, { method: 'PUT', body, headers: Object.fromEntries(p.headers.map((h) => [h.slice(0, h.indexOf(':')), h.slice(h.indexOf(': ') + 2)])) });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/<Code>BadDigest<\/Code>/);
    expect(await listBackups(b.s3, b.store, 'prod')).toEqual([]);
  });

  it('refuses to back up a cluster without quorum (a minority member could hand out stale data)', async () => {
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    sandbox.host(cluster.members[0]!.instanceId).crash();
    sandbox.host(cluster.members[1]!.instanceId).crash();
    const out = await backupCluster(deps(), 'prod', sandboxBackupSettings(b));
    expect(out.result).toBe('failed');
    expect(out.failure?.step).toBe('source');
    expect((await b.s3.send(new ListObjectsV2Command({ Bucket: b.store.bucket }))).KeyCount ?? 0).toBe(0);
    expect((await receivedAlerts(ctl)).some((a) => a.includes('no backup taken'))).toBe(true);
  });

  describe('retention over 90 days of half-hourly backups (4,320 objects, 5 listing pages)', () => {
    const now = Date.UTC(2026, 10, 25, 12, 0, 0);
    const keys: string[] = [];
    const fixedClock: Clock = { now: () => now, sleep: () => Promise.resolve() };

    beforeEach(async () => {
      keys.length = 0;
      for (let t = now - 90 * 24 * HOUR; t <= now; t += HOUR / 2) keys.push(backupKey(b.store, 'prod', 'etcd-b', new Date(t), 'zstd'));
      const queue = [...keys];
      await Promise.all(Array.from({ length: 16 }, async () => {
        for (let k = queue.shift(); k !== undefined; k = queue.shift()) await b.s3.send(new PutObjectCommand({ Bucket: b.store.bucket, Key: k, Body: 'x' }));
      }));
      // Not a backup key: never touched by pruning.
      await b.s3.send(new PutObjectCommand({ Bucket: b.store.bucket, Key: 'etcd-backups/prod/README.txt', Body: 'operator notes' }));
    });

    it('keeps exactly the expected set; deletes nothing on a failed listing; never the newest; alerts once when stale', async () => {
      expect(keys).toHaveLength(90 * 48 + 1);

      // A listing page fails: nothing is deleted.
      let lists = 0;
      b.s3.middlewareStack.add((next, context) => async (args) => {
        if (context.commandName === 'ListObjectsV2Command' && ++lists === 3) throw Object.assign(new Error('We encountered an internal error. Please try again.'), { name: 'InternalError', $fault: 'server' });
        return next(args);
      }, { step: 'initialize', name: 'failThirdListPage' });
      const failed = await pruneBackups(deps(fixedClock), 'prod', sandboxBackupSettings(b));
      b.s3.middlewareStack.remove('failThirdListPage');
      expect(failed.pruned).toEqual([]);
      expect(failed.pruneSkipped).toMatch(/listing failed.*nothing deleted/);
      expect(await listBackups(b.s3, b.store, 'prod')).toHaveLength(keys.length);

      // A complete listing: exactly the policy's set is left.
      const out = await pruneBackups(deps(fixedClock), 'prod', sandboxBackupSettings(b));
      const expected = decideRetention(keys.map((key, i) => ({ key, takenAt: now - (keys.length - 1 - i) * HOUR / 2, good: true })), DEFAULT_RETENTION, now);
      const left = (await listBackups(b.s3, b.store, 'prod')).map((o) => o.key);
      expect(new Set(left)).toEqual(new Set(expected.keep.keys()));
      expect(left.length).toBe(expected.keep.size);
      expect(left.length).toBeLessThan(70); // 24 h of half-hourly + a few dailies and weeklies
      expect(out.pruned).toHaveLength(keys.length - left.length);
      expect(out.stale).toBe(false);
      expect((await b.s3.send(new HeadObjectCommand({ Bucket: b.store.bucket, Key: 'etcd-backups/prod/README.txt' }))).ContentLength).toBe(14);
      // A second run deletes nothing more.
      expect((await pruneBackups(deps(fixedClock), 'prod', sandboxBackupSettings(b))).pruned).toEqual([]);

      // Three hours later with a 1 h objective: stale, one alert for two runs.
      const later: Clock = { now: () => now + 3 * HOUR, sleep: () => Promise.resolve() };
      const stale = await pruneBackups(deps(later), 'prod', sandboxBackupSettings(b, { staleAfterSec: 3600 }));
      expect(stale.newestGoodAgeSec).toBe(3 * 3600);
      expect(stale.stale).toBe(true);
      await pruneBackups(deps(later), 'prod', sandboxBackupSettings(b, { staleAfterSec: 3600 }));
      expect((await receivedAlerts(ctl)).filter((a) => a.includes('stale'))).toHaveLength(1);
      // The newest good backup survives even a policy that keeps nothing.
      await pruneBackups(deps(later), 'prod', sandboxBackupSettings(b, { retention: { keepAllHours: 0, dailyDays: 0, weeklyWeeks: 0 } }));
      expect((await listBackups(b.s3, b.store, 'prod')).map((o) => o.key)).toEqual([keys.at(-1)]);
    });
  });
});
