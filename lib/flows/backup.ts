/**
 * Scheduled etcd backup of one cluster:
 *
 *   source (a healthy follower of a cluster with quorum) → prepare on that master (snapshot
 *   save, status, TRIAL RESTORE, compress, SHA-256) → presign a PUT for exactly that file →
 *   upload from the master → HeadObject check (size, SSE-KMS key, checksum) → retention
 *   pruning (only on a complete listing) → freshness check of the newest good backup.
 *
 * The snapshot goes from the master straight to S3: Lambda memory never holds it. Level-
 * triggered: a run re-reads everything; a failed run leaves no object and no local file behind
 * (the master discards its prepared file), and one alert says why.
 */
import { z } from 'zod';
import type { Alerter } from '../aws/alerts';
import {
  type BackupMeta, type BackupObject, type BackupStore, backupKey, deleteBackups, headBackup, listBackups, presignUpload,
} from '../aws/backups';
import { runHostScript } from '../aws/run-command';
import type { BackupConfig } from '../config';
import { chooseBackupSource } from '../domain/backup-source';
import { decideRetention, type RetentionPolicy } from '../domain/retention';
import { clusterMasters, firstHealthyPeer } from './cluster-masters';
import { type HostFlowDeps, hostRunOpts } from './deps';
import { FlowFailure, STATUS_TIMEOUT } from './replacement';

export interface BackupDeps extends HostFlowDeps {
  alerter: Alerter;
}

export interface BackupSettings {
  store: BackupStore;
  /** Where masters stage snapshots (on the root disk, not on the etcd volume). */
  workDir: string;
  compressor: 'auto' | 'zstd' | 'gzip';
  retention: RetentionPolicy;
  /** The newest good backup older than this raises an alert (default: 2 × the schedule). */
  staleAfterSec: number;
}

export const DEFAULT_WORK_DIR = '/var/lib/quorum-keeper/snapshots';

export function backupSettings(cfg: BackupConfig): BackupSettings {
  return {
    store: { bucket: cfg.QK_BACKUP_BUCKET, prefix: cfg.QK_BACKUP_PREFIX, ...(cfg.QK_BACKUP_KMS_KEY_ID ? { kmsKeyId: cfg.QK_BACKUP_KMS_KEY_ID } : {}) },
    workDir: cfg.QK_BACKUP_WORK_DIR,
    compressor: cfg.QK_BACKUP_COMPRESSOR,
    retention: { keepAllHours: cfg.QK_RETENTION_KEEP_ALL_HOURS, dailyDays: cfg.QK_RETENTION_DAILY_DAYS, weeklyWeeks: cfg.QK_RETENTION_WEEKLY_WEEKS },
    staleAfterSec: cfg.QK_BACKUP_STALE_AFTER_SEC,
  };
}

export interface BackupOutcome {
  cluster: string;
  result: 'uploaded' | 'failed';
  key?: string;
  member?: string;
  role?: 'follower' | 'leader';
  revision?: number;
  keys?: number | null;
  rawSize?: number;
  size?: number;
  compressor?: string;
  /** Step durations on the master and end to end, in ms. */
  ms: { total: number; save?: number; verify?: number; compress?: number; upload?: number };
  /** Age of the newest good backup after this run; null when there is none or the listing failed. */
  newestGoodAgeSec: number | null;
  pruned: string[];
  /** Why nothing was pruned, when pruning was skipped. */
  pruneSkipped?: string;
  failure?: { step: string; message: string; action: string };
  stale: boolean;
}

const preparedSchema = z.object({
  result: z.literal('prepared'),
  file: z.string().regex(/^snapshot-\d{8}T\d{6}Z\.db\.(zst|gz)$/),
  compressor: z.enum(['zstd', 'gzip']),
  rawSize: z.number().int().nonnegative(),
  size: z.number().int().positive(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sha256Base64: z.string().regex(/^[A-Za-z0-9+/]{43}=$/),
  status: z.object({ revision: z.number().int().nonnegative(), hash: z.number(), totalKey: z.number() }),
  keys: z.number().int().nonnegative().nullable(),
  etcdVersion: z.string().regex(/^[0-9A-Za-z.+-]{1,32}$/),
  ms: z.object({ save: z.number(), verify: z.number(), compress: z.number() }),
});
type Prepared = z.infer<typeof preparedSchema>;

/** Does the object's key ID match the configured key (ARN, key ID or alias)? */
function kmsMatches(configured: string | undefined, actual: string | undefined): boolean {
  if (!configured) return true;
  if (!actual) return false;
  if (configured.startsWith('alias/') || configured.includes(':alias/')) return true; // S3 reports the key ARN, not the alias
  return actual === configured || actual.endsWith(`/${configured}`);
}

export async function backupCluster(deps: BackupDeps, cluster: string, settings: BackupSettings): Promise<BackupOutcome> {
  const t0 = deps.clock.now();
  const out: BackupOutcome = { cluster, result: 'failed', ms: { total: 0 }, newestGoodAgeSec: null, pruned: [], stale: false };
  const say = (step: string, status: 'start' | 'ok' | 'skip' | 'wait' | 'fail', detail: string) => deps.progress({ step, status, detail });
  let staged: { instanceId: string; file: string } | null = null;
  try {
    // 1. Source: a healthy follower of a cluster that has a leader and quorum.
    const masters = await clusterMasters(deps.asg, deps.tags, cluster);
    const instances = new Map(masters.filter((m) => m.instanceId).map((m) => [m.member, m.instanceId!]));
    const peer = await firstHealthyPeer(deps.ssm, deps.scripts, [...instances].map(([member, instanceId]) => ({ member, instanceId })), hostRunOpts(deps, 120));
    if (!peer) {
      throw new FlowFailure('source', `no healthy etcd member of ${cluster} answers (${masters.length} slots, ${instances.size} with an InService instance): no backup taken`,
        'The cluster may have lost quorum: check `quorum-keeper status`; the newest existing backup is what a restore would use.', 'critical', 'backup-source');
    }
    const members = await peer.etcd.memberList();
    const report = await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT });
    const choice = chooseBackupSource(members.members, report, instances);
    if (choice.kind === 'none') {
      throw new FlowFailure('source', `${cluster}: ${choice.reason}; no backup taken`, 'Restore the cluster\'s health first; see `quorum-keeper status`.', 'critical', 'backup-source');
    }
    out.member = choice.member;
    out.role = choice.role;
    say('source', 'ok', `${choice.member} (${choice.role}) on ${choice.instanceId}`);

    // 2. Snapshot, verify by trial restore, compress, hash — all on the master.
    const takenAt = new Date(deps.clock.now());
    const prep = await runHostScript(deps.ssm, deps.scripts, choice.instanceId, 'etcd-snapshot.sh',
      ['prepare', '--work-dir', settings.workDir, '--endpoint', choice.clientUrl, '--compressor', settings.compressor], hostRunOpts(deps));
    if (prep.exitCode !== 0) {
      const why = prep.stderr.trim().split('\n').pop() ?? prep.status;
      const corrupt = /trial restore failed|not a valid snapshot/.test(prep.stderr);
      throw new FlowFailure(corrupt ? 'verify' : 'snapshot',
        corrupt ? `the snapshot of ${cluster} taken from ${choice.member} FAILED VERIFICATION and was discarded: ${why}` : `snapshot of ${cluster} on ${choice.member} failed: ${why}`,
        corrupt
          ? 'etcd produced a snapshot that does not restore: check the member\'s disk and `etcdctl alarm list` (CORRUPT); the previous good backups are kept.'
          : 'Read the command output in SSM Run Command history for this instance; the previous good backups are kept.',
        'critical', corrupt ? 'backup-corrupt' : 'backup-snapshot');
    }
    let prepared: Prepared;
    try {
      prepared = preparedSchema.parse(JSON.parse(prep.stdout.trim().split('\n').pop() ?? ''));
    } catch (err) {
      throw new FlowFailure('snapshot', `unexpected answer from etcd-snapshot.sh prepare on ${choice.instanceId}: ${err instanceof Error ? err.message : String(err)}`, 'Check the host scripts version.', 'critical', 'backup-snapshot');
    }
    staged = { instanceId: choice.instanceId, file: prepared.file };
    Object.assign(out.ms, prepared.ms);
    Object.assign(out, { revision: prepared.status.revision, keys: prepared.keys, rawSize: prepared.rawSize, size: prepared.size, compressor: prepared.compressor });
    say('verify', 'ok', `revision ${prepared.status.revision}, ${prepared.keys ?? '?'} keys, trial restore passed; ${prepared.rawSize} → ${prepared.size} bytes (${prepared.compressor})`);

    // 3. Upload straight from the master through a URL signed for this one object.
    const meta: BackupMeta = {
      cluster, member: choice.member, revision: prepared.status.revision, keys: prepared.keys, etcdVersion: prepared.etcdVersion,
      rawSize: prepared.rawSize, size: prepared.size, sha256: prepared.sha256, compressor: prepared.compressor, takenAt,
    };
    const key = backupKey(settings.store, cluster, choice.member, takenAt, prepared.compressor);
    const signed = await presignUpload(deps.s3, settings.store, key, meta, prepared.sha256Base64);
    const tu = deps.clock.now();
    const up = await runHostScript(deps.ssm, deps.scripts, choice.instanceId, 'etcd-snapshot.sh', ['upload', '--work-dir', settings.workDir, '--file', prepared.file,
      '--upload-url-b64', Buffer.from(signed.url).toString('base64url'), '--headers-b64', Buffer.from(signed.headers.join('\n')).toString('base64url')], hostRunOpts(deps));
    if (up.exitCode !== 0) {
      throw new FlowFailure('upload', `upload of ${key} from ${choice.instanceId} failed: ${up.stderr.trim().split('\n').pop() ?? up.status}`,
        'Check the master\'s route to S3 (VPC endpoint or NAT) and the bucket policy; the previous good backups are kept.', 'critical', 'backup-upload');
    }
    staged = null; // the master removes its file after a successful upload
    out.ms.upload = deps.clock.now() - tu;

    // 4. What S3 stored is what the master prepared.
    const stored = await headBackup(deps.s3, settings.store, key);
    const problems = [
      stored.size !== prepared.size && `size ${stored.size} ≠ ${prepared.size}`,
      stored.encryption !== 'aws:kms' && `encryption ${stored.encryption ?? 'none'} ≠ aws:kms`,
      !kmsMatches(settings.store.kmsKeyId, stored.kmsKeyId) && `KMS key ${stored.kmsKeyId ?? 'none'} ≠ ${settings.store.kmsKeyId ?? ''}`,
      stored.checksumSha256 !== undefined && stored.checksumSha256 !== prepared.sha256Base64 && `checksum ${stored.checksumSha256} ≠ ${prepared.sha256Base64}`,
      stored.meta?.revision !== prepared.status.revision && 'metadata missing or different',
    ].filter((p): p is string => typeof p === 'string');
    if (problems.length) {
      await deleteBackups(deps.s3, settings.store, [key]);
      throw new FlowFailure('upload-check', `the stored object ${key} does not match the prepared snapshot (${problems.join('; ')}); it was deleted`,
        'Check the bucket\'s default encryption and any object-rewriting integration on the bucket.', 'critical', 'backup-upload');
    }
    out.key = key;
    out.result = 'uploaded';
    say('upload', 'ok', `s3://${settings.store.bucket}/${key} (${prepared.size} bytes, SSE-KMS, SHA-256 checked by S3)`);
  } catch (err) {
    const f = err instanceof FlowFailure ? err : new FlowFailure('backup', err instanceof Error ? err.message : String(err), 'See the function\'s log for the full error.', 'critical', 'backup-error');
    out.failure = { step: f.step, message: f.message, action: f.action };
    say(f.step, 'fail', f.message);
    if (staged) {
      await runHostScript(deps.ssm, deps.scripts, staged.instanceId, 'etcd-snapshot.sh', ['discard', '--work-dir', settings.workDir, '--file', staged.file], hostRunOpts(deps, 120))
        .catch(() => undefined);
    }
    await deps.alerter.alert({
      severity: f.severity, cluster, flow: 'backup', step: f.step, summary: `etcd backup failed: ${f.message}`.slice(0, 400), action: f.action,
      dedupeKey: `${cluster}#${f.dedupe}`, ...(out.member ? { member: out.member } : {}),
    });
  }

  // 5. Retention and freshness, from one complete listing.
  Object.assign(out, await pruneBackups(deps, cluster, settings));
  out.ms.total = deps.clock.now() - t0;
  return out;
}

export type PruneOutcome = Pick<BackupOutcome, 'newestGoodAgeSec' | 'pruned' | 'pruneSkipped' | 'stale'>;

/**
 * Applies the retention policy to the cluster's backups and checks the newest one's age.
 * Deletes nothing unless the listing was complete; never deletes the newest good backup.
 */
export async function pruneBackups(deps: BackupDeps, cluster: string, settings: BackupSettings): Promise<PruneOutcome> {
  const out: PruneOutcome = { newestGoodAgeSec: null, pruned: [], stale: false };
  let listing: BackupObject[];
  try {
    listing = await listBackups(deps.s3, settings.store, cluster);
  } catch (err) {
    out.pruneSkipped = `listing failed (${err instanceof Error ? err.message : String(err)}): nothing deleted`;
    deps.progress({ step: 'retention', status: 'skip', detail: out.pruneSkipped });
    return out;
  }
  const now = deps.clock.now();
  const newest = listing.at(-1);
  out.newestGoodAgeSec = newest ? Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) : null;
  const decision = decideRetention(listing.map((b) => ({ key: b.key, takenAt: b.takenAt.getTime(), good: true })), settings.retention, now);
  if (decision.delete.length) {
    const failed = await deleteBackups(deps.s3, settings.store, decision.delete);
    const failedKeys = new Set(failed.map((f) => f.key));
    out.pruned = decision.delete.filter((k) => !failedKeys.has(k));
    if (failed.length) out.pruneSkipped = `${failed.length} deletions failed, e.g. ${failed[0]!.key}: ${failed[0]!.error}`;
  }
  deps.progress({ step: 'retention', status: 'ok', detail: `${listing.length} backups listed, ${decision.keep.size} kept, ${out.pruned.length} deleted` });

  if (out.newestGoodAgeSec === null || out.newestGoodAgeSec > settings.staleAfterSec) {
    out.stale = true;
    const age = out.newestGoodAgeSec === null ? 'there is no backup at all' : `the newest good backup is ${Math.round(out.newestGoodAgeSec / 60)} min old (objective ${Math.round(settings.staleAfterSec / 60)} min)`;
    await deps.alerter.alert({
      severity: 'warning', cluster, flow: 'backup', step: 'freshness', summary: `etcd backups of ${cluster} are stale: ${age}`,
      action: 'Look for backup failure alerts of this cluster; run `quorum-keeper backup --cluster <name>` once the cause is fixed.',
      dedupeKey: `${cluster}#backup-stale`,
    });
  }
  return out;
}
