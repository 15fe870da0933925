import { S3Client } from '@aws-sdk/client-s3';
import { backupKey, parseBackupKey, presignUpload, stampOf, type BackupMeta } from '../../lib/aws/backups';

const store = { bucket: 'qk-backups', prefix: 'etcd-backups', kmsKeyId: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' };

describe('backup keys', () => {
  it('round-trip and sort by time within a cluster', () => {
    const t1 = new Date(Date.UTC(2026, 0, 2, 3, 4, 5));
    const t2 = new Date(Date.UTC(2026, 10, 25, 23, 59, 59));
    const k1 = backupKey(store, 'prod', 'etcd-b', t1, 'zstd');
    const k2 = backupKey(store, 'prod', 'etcd-a', t2, 'gzip');
    expect(k1).toBe('etcd-backups/prod/20260102T030405Z-etcd-b.db.zst');
    expect(k1 < k2).toBe(true);
    expect(parseBackupKey(store, 'prod', k1)).toMatchObject({ member: 'etcd-b', compressor: 'zstd', takenAt: t1 });
    expect(parseBackupKey(store, 'prod', k2)).toMatchObject({ member: 'etcd-a', compressor: 'gzip', takenAt: t2 });
    expect(stampOf(t2)).toBe('20261125T235959Z');
  });
  it.each([
    'etcd-backups/prod/README.txt', 'etcd-backups/prod/20261332T000000Z-etcd-a.db.zst', 'etcd-backups/prod/20260102T030405Z-Etcd-A.db.zst',
    'etcd-backups/prod-2/20260102T030405Z-etcd-a.db.zst', 'etcd-backups/prod/sub/20260102T030405Z-etcd-a.db.zst', 'etcd-backups/prod/20260102T030405Z-etcd-a.db',
  ])('ignores %s (never pruned, never restored)', (key) => {
    expect(parseBackupKey(store, 'prod', key)).toBeNull();
  });
});

describe('presignUpload', () => {
  const s3 = new S3Client({ region: 'eu-west-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' } });
  afterAll(() => s3.destroy());
  const meta: BackupMeta = {
    cluster: 'prod', member: 'etcd-b', revision: 42, keys: 7, etcdVersion: '3.4.23', rawSize: 2048, size: 512,
    sha256: 'a'.repeat(64), compressor: 'zstd', takenAt: new Date(Date.UTC(2026, 10, 25)),
  };
  it('signs every header the master sends: checksum, SSE-KMS key, metadata, length', async () => {
    const p = await presignUpload(s3, store, 'etcd-backups/prod/x.db.zst', meta, 'q'.repeat(43) + '=');
    const signed = new URL(p.url).searchParams.get('X-Amz-SignedHeaders')!.split(';');
    const sent = p.headers.map((h) => h.slice(0, h.indexOf(':')));
    expect(new Set(signed)).toEqual(new Set(['host', ...sent]));
    expect(p.headers).toEqual(expect.arrayContaining([
      'content-length: 512', `x-amz-checksum-sha256: ${'q'.repeat(43)}=`, 'x-amz-server-side-encryption: aws:kms',
      `x-amz-server-side-encryption-aws-kms-key-id: ${store.kmsKeyId}`, 'x-amz-meta-revision: 42', 'x-amz-meta-keys: 7', 'x-amz-meta-verified: trial-restore',
    ]));
    // Every header value passes the host script's allow-list (etcd-snapshot.sh upload).
    for (const h of p.headers) expect(h.slice(h.indexOf(': ') + 2)).toMatch(/^[A-Za-z0-9._:/=+@,-]+$/);
  });
});
