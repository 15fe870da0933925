/**
 * The backup store in S3: key layout, presigned transfers (masters upload and download
 * directly, so a snapshot never passes through Lambda memory), listing and deletion.
 *
 * Key layout: `<prefix>/<cluster>/<YYYYMMDDTHHMMSSZ>-<member>.db.<zst|gz>`. Keys sort by time
 * within a cluster, and the listing alone says when each backup was taken (retention and the
 * freshness check never need one HeadObject per backup). Only verified snapshots are uploaded
 * (trial restore on the host first), so every object with a well-formed key is a good backup;
 * objects with other keys are ignored and never deleted.
 */
import {
  DeleteObjectsCommand, GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, paginateListObjectsV2, PutObjectCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { patterns } from '../validate';

export interface BackupStore {
  bucket: string;
  /** Key prefix without slashes at either end, e.g. `etcd-backups`. */
  prefix: string;
  /** KMS key (ARN, ID or alias) for SSE-KMS; absent = the bucket's default aws:kms key. */
  kmsKeyId?: string;
}

export type Compressor = 'zstd' | 'gzip';

export interface BackupObject {
  key: string;
  cluster: string;
  member: string;
  takenAt: Date;
  compressor: Compressor;
  size: number;
  /** When S3 stored it (server time); null when not listed. */
  lastModified: Date | null;
  /**
   * Its key is dated more than FUTURE_SLACK_MS after S3 stored it: written by a machine whose clock
   * ran ahead. Never `latest`, never counted for freshness or retention (and never deleted by it).
   */
  futureDated: boolean;
}

/** How far a key's time may lie after the object's LastModified (clock jitter, slow uploads are the other way). */
export const FUTURE_SLACK_MS = 5 * 60_000;

/** What the master's `etcd-snapshot.sh prepare` reported, plus where it came from. */
export interface BackupMeta {
  cluster: string;
  member: string;
  revision: number;
  /** Keys in the keyspace at `revision`; null when it could not be counted. */
  keys: number | null;
  etcdVersion: string;
  rawSize: number;
  size: number;
  sha256: string;
  compressor: Compressor;
  takenAt: Date;
}

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

export function stampOf(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
}

export function clusterPrefix(store: BackupStore, cluster: string): string {
  return `${store.prefix}/${cluster}/`;
}

export function backupKey(store: BackupStore, cluster: string, member: string, takenAt: Date, compressor: Compressor): string {
  return `${clusterPrefix(store, cluster)}${stampOf(takenAt)}-${member}.db.${compressor === 'zstd' ? 'zst' : 'gz'}`;
}

/** The backup a key names, or null for anything that is not a Quorum Keeper backup key. */
export function parseBackupKey(store: BackupStore, cluster: string, key: string, size = 0, lastModified: Date | null = null): BackupObject | null {
  const base = clusterPrefix(store, cluster);
  if (!key.startsWith(base)) return null;
  const m = /^(\d{8}T\d{6}Z)-([a-z0-9-]{1,63})\.db\.(zst|gz)$/.exec(key.slice(base.length));
  if (!m || !patterns.memberName.test(m[2]!)) return null;
  const t = STAMP.exec(m[1]!)!;
  const takenAt = new Date(Date.UTC(+t[1]!, +t[2]! - 1, +t[3]!, +t[4]!, +t[5]!, +t[6]!));
  if (Number.isNaN(takenAt.getTime()) || stampOf(takenAt) !== m[1]) return null;
  const futureDated = lastModified !== null && takenAt.getTime() - lastModified.getTime() > FUTURE_SLACK_MS;
  return { key, cluster, member: m[2]!, takenAt, compressor: m[3] === 'zst' ? 'zstd' : 'gzip', size, lastModified, futureDated };
}

/**
 * Every backup of `cluster`, oldest first. Throws if any page fails: callers must treat a
 * failed listing as "unknown", never as "empty" (pruning on a partial listing could delete the
 * only good backup).
 */
/** Whether any object lies under the cluster's backup prefix (one small List call: a backup, or anything else there, counts). */
export async function anyBackup(s3: S3Client, store: BackupStore, cluster: string): Promise<boolean> {
  const page = await s3.send(new ListObjectsV2Command({ Bucket: store.bucket, Prefix: clusterPrefix(store, cluster), MaxKeys: 1 }));
  return (page.KeyCount ?? page.Contents?.length ?? 0) > 0;
}

export async function listBackups(s3: S3Client, store: BackupStore, cluster: string): Promise<BackupObject[]> {
  const out: BackupObject[] = [];
  for await (const page of paginateListObjectsV2({ client: s3, pageSize: 1000 }, { Bucket: store.bucket, Prefix: clusterPrefix(store, cluster) })) {
    for (const o of page.Contents ?? []) {
      const b = o.Key ? parseBackupKey(store, cluster, o.Key, o.Size ?? 0, o.LastModified ?? null) : null;
      if (b) out.push(b);
    }
  }
  return out.sort((a, b) => a.takenAt.getTime() - b.takenAt.getTime() || (a.key < b.key ? -1 : 1));
}

/**
 * The backups that count (for `latest`, freshness and retention), oldest first, and the
 * future-dated ones left out: a key dated after S3 stored it (beyond the slack), or after `now`
 * (server time) beyond the slack.
 */
export function usableBackups(list: readonly BackupObject[], now: number): { usable: BackupObject[]; futureDated: BackupObject[] } {
  const future = (b: BackupObject) => b.futureDated || b.takenAt.getTime() - now > FUTURE_SLACK_MS;
  return { usable: list.filter((b) => !future(b)), futureDated: list.filter(future) };
}

const META_FIELDS = ['cluster', 'member', 'revision', 'keys', 'etcd-version', 'raw-size', 'size', 'sha256', 'compressor', 'taken-at'] as const;

function metaHeaders(meta: BackupMeta): Record<string, string> {
  const m: Record<(typeof META_FIELDS)[number] | 'verified', string> = {
    cluster: meta.cluster, member: meta.member, revision: String(meta.revision), keys: meta.keys === null ? 'unknown' : String(meta.keys),
    'etcd-version': meta.etcdVersion, 'raw-size': String(meta.rawSize), size: String(meta.size), sha256: meta.sha256,
    compressor: meta.compressor, 'taken-at': meta.takenAt.toISOString(), verified: 'trial-restore',
  };
  return m;
}

export interface PresignedUpload {
  url: string;
  /** Exactly the headers the URL's signature covers (besides host), as `name: value` lines. */
  headers: string[];
}

/**
 * A presigned PUT whose signature covers the content length, the SHA-256 checksum (S3 checks
 * it on arrival and refuses a mismatch), SSE-KMS and the metadata. S3 rejects x-amz-* headers
 * a presigned URL did not sign, so the header set is checked against X-Amz-SignedHeaders.
 * It lives an hour: the master uses it only after the trial restore's verdict, which can take
 * minutes on a large DB; and it can write nothing but these exact bytes (the checksum is signed).
 */
/**
 * `signingDate`: AWS's time (ServerClock), not this machine's. S3 refuses a presigned URL dated
 * more than 15 minutes ahead ("Request is not yet valid") and one past X-Amz-Date + X-Amz-Expires
 * ("Request has expired"); the SDK's clock-skew correction covers only the requests it sends
 * itself, never a URL another machine uses (https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html).
 */
export interface PresignOptions {
  signingDate?: Date;
  expiresSec?: number;
}

export async function presignUpload(s3: S3Client, store: BackupStore, key: string, meta: BackupMeta, sha256Base64: string, o: PresignOptions = {}): Promise<PresignedUpload> {
  const expiresSec = o.expiresSec ?? 3600;
  const metadata = metaHeaders(meta);
  const headers: Record<string, string> = {
    'content-length': String(meta.size),
    'x-amz-checksum-sha256': sha256Base64,
    'x-amz-sdk-checksum-algorithm': 'SHA256',
    'x-amz-server-side-encryption': 'aws:kms',
    ...(store.kmsKeyId ? { 'x-amz-server-side-encryption-aws-kms-key-id': store.kmsKeyId } : {}),
    ...Object.fromEntries(Object.entries(metadata).map(([k, v]) => [`x-amz-meta-${k}`, v])),
  };
  const names = new Set(Object.keys(headers));
  const url = await getSignedUrl(s3, new PutObjectCommand({
    Bucket: store.bucket, Key: key, ContentLength: meta.size, ChecksumAlgorithm: 'SHA256', ChecksumSHA256: sha256Base64,
    ServerSideEncryption: 'aws:kms', ...(store.kmsKeyId ? { SSEKMSKeyId: store.kmsKeyId } : {}), Metadata: metadata,
  }), { expiresIn: expiresSec, signableHeaders: names, unhoistableHeaders: names, ...(o.signingDate ? { signingDate: o.signingDate } : {}) });
  const signed = (new URL(url).searchParams.get('X-Amz-SignedHeaders') ?? '').split(';').filter((h) => h && h !== 'host');
  const missing = signed.filter((h) => !names.has(h));
  const unsigned = [...names].filter((h) => !signed.includes(h));
  if (missing.length || unsigned.length) {
    throw new Error(`presigned upload for ${key}: signed headers do not match the headers the master will send (signed but not sent: ${missing.join(', ') || 'none'}; sent but not signed: ${unsigned.join(', ') || 'none'})`);
  }
  return { url, headers: Object.entries(headers).map(([k, v]) => `${k}: ${v}`) };
}

/**
 * A presigned GET for one backup. It travels in the SSM command's parameters, which SSM keeps in
 * its history (ssm:ListCommands, part of ReadOnlyAccess) and which grant the whole snapshot —
 * Kubernetes Secrets included — while the URL lives: 60 s. The URL is signed per master just
 * before its command is sent, the master starts the download at once (curl's retries within
 * seconds), and S3 checks the expiry when a request starts, not while it streams
 * (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html: "S3 checks the
 * expiration date and time of a signed URL at the time of the HTTP request"). A command delayed
 * past it gets HTTP 403, which the host reports; the restore is safe to re-run.
 */
export const DOWNLOAD_URL_TTL_SEC = 60;

export async function presignDownload(s3: S3Client, store: BackupStore, key: string, o: PresignOptions = {}): Promise<string> {
  return getSignedUrl(s3, new GetObjectCommand({ Bucket: store.bucket, Key: key }), { expiresIn: o.expiresSec ?? DOWNLOAD_URL_TTL_SEC, ...(o.signingDate ? { signingDate: o.signingDate } : {}) });
}

export interface StoredBackup {
  key: string;
  size: number;
  encryption: string | undefined;
  kmsKeyId: string | undefined;
  checksumSha256: string | undefined;
  meta: BackupMeta | null;
  /** Why the metadata could not be read, when meta is null. */
  metaProblem?: string;
}

/** HeadObject with the stored checksum, encryption and the backup's metadata. */
export async function headBackup(s3: S3Client, store: BackupStore, key: string): Promise<StoredBackup> {
  const h = await s3.send(new HeadObjectCommand({ Bucket: store.bucket, Key: key, ChecksumMode: 'ENABLED' }));
  const md = h.Metadata ?? {};
  let meta: BackupMeta | null = null;
  let metaProblem: string | undefined;
  const num = (k: string) => (md[k] !== undefined && /^\d{1,15}$/.test(md[k]) ? Number(md[k]) : NaN);
  const missing = META_FIELDS.filter((f) => md[f] === undefined);
  if (missing.length) {
    metaProblem = `missing metadata: ${missing.join(', ')}`;
  } else if (!/^[0-9a-f]{64}$/.test(md.sha256!) || !['zstd', 'gzip'].includes(md.compressor!) || [num('revision'), num('raw-size'), num('size')].some(Number.isNaN)) {
    metaProblem = 'malformed metadata';
  } else {
    meta = {
      cluster: md.cluster!, member: md.member!, revision: num('revision'), keys: md.keys === 'unknown' ? null : num('keys'),
      etcdVersion: md['etcd-version']!, rawSize: num('raw-size'), size: num('size'), sha256: md.sha256!,
      compressor: md.compressor as Compressor, takenAt: new Date(md['taken-at']!),
    };
    if (meta.keys !== null && Number.isNaN(meta.keys)) meta.keys = null;
  }
  return {
    key, size: h.ContentLength ?? 0, encryption: h.ServerSideEncryption, kmsKeyId: h.SSEKMSKeyId, checksumSha256: h.ChecksumSHA256,
    meta, ...(metaProblem ? { metaProblem } : {}),
  };
}

/** Deletes keys in batches of 1000; returns the keys S3 reported as not deleted. */
export async function deleteBackups(s3: S3Client, store: BackupStore, keys: readonly string[]): Promise<Array<{ key: string; error: string }>> {
  const failed: Array<{ key: string; error: string }> = [];
  for (let i = 0; i < keys.length; i += 1000) {
    const batch = keys.slice(i, i + 1000);
    const out = await s3.send(new DeleteObjectsCommand({ Bucket: store.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }));
    for (const e of out.Errors ?? []) failed.push({ key: e.Key ?? '?', error: `${e.Code ?? ''} ${e.Message ?? ''}`.trim() });
  }
  return failed;
}
