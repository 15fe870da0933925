/**
 * Scheduled etcd backup of one cluster:
 *
 *   source (a healthy follower of a cluster with quorum, from one survey command) → prepare on
 *   that master (snapshot save, status, compress, SHA-256; the TRIAL RESTORE starts beside
 *   them and keeps running) → presign a PUT for exactly that file (meanwhile the trial
 *   restore finishes) → the master uploads ONLY if the snapshot restored (an unverified
 *   snapshot never reaches S3) → HeadObject check (size, SSE-KMS key, checksum) → retention
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
import { lastLine, runHostScript } from '../aws/run-command';
import type { BackupConfig } from '../config';
import { chooseBackupSource } from '../domain/backup-source';
import { decideRetention, type RetentionPolicy } from '../domain/retention';
import { clusterMasters } from './cluster-masters';
import { type HostFlowDeps, hostRunOpts } from './deps';
import { FlowFailure, FlowRun } from './run';
import { surveyCluster } from './survey';

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
  ms: { total: number; save?: number; verify?: number; compress?: number; upload?: number; put?: number };
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
  verify: z.literal('pending'),
  ms: z.object({ save: z.number(), compress: z.number() }),
});
type Prepared = z.infer<typeof preparedSchema>;

const uploadedSchema = z.object({
  result: z.literal('uploaded'),
  verified: z.literal(true),
  verifyMs: z.number().int().nonnegative(),
  seconds: z.number().nonnegative(),
});

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
  const run = new FlowRun(deps, { owner: 'backup' });
  const say = run.say.bind(run);
  let staged: { instanceId: string; file: string } | null = null;
  try {
    // 1. Source: a healthy follower of a cluster that has a leader and quorum.
    const masters = await clusterMasters(deps.asg, deps.tags, cluster);
    const instances = new Map(masters.filter((m) => m.instanceId).map((m) => [m.member, m.instanceId!]));
    const { survey, tried } = await surveyCluster(deps.ssm, deps.scripts, [...instances].map(([member, instanceId]) => ({ member, instanceId })), hostRunOpts(deps, 120));
    if (!survey?.members) {
      throw new FlowFailure('source', `no etcd member of ${cluster} answers (${masters.length} slots, ${instances.size} with an InService instance${tried.length ? `: ${tried.join('; ')}` : ''}): no backup taken`,
        'The cluster may have lost quorum: check `quorum-keeper status`; the newest existing backup is what a restore would use.', 'critical', 'backup-source');
    }
    const members = survey.members;
    const report = survey.status;
    const choice = chooseBackupSource(members.members, report, instances);
    if (choice.kind === 'none') {
      throw new FlowFailure('source', `${cluster}: ${choice.reason}; no backup taken`, 'Restore the cluster\'s health first; see `quorum-keeper status`.', 'critical', 'backup-source');
    }
    out.member = choice.member;
    out.role = choice.role;
    say('source', 'ok', `${choice.member} (${choice.role}) on ${choice.instanceId}`);

    // 2. Snapshot, compress, hash on the master; the trial restore starts there too.
    const takenAt = new Date(deps.clock.now());
    const prep = await runHostScript(deps.ssm, deps.scripts, choice.instanceId, 'etcd-snapshot.sh',
      ['prepare', '--work-dir', settings.workDir, '--endpoint', choice.clientUrl, '--compressor', settings.compressor], hostRunOpts(deps));
    if (prep.exitCode !== 0) {
      const why = lastLine(prep.stderr) || prep.status;
      if (/not a valid snapshot/.test(prep.stderr)) throw corruptSnapshot(cluster, choice.member, why);
      throw new FlowFailure('snapshot', `snapshot of ${cluster} on ${choice.member} failed: ${why}`,
        'Read the command output in SSM Run Command history for this instance; the previous good backups are kept.', 'critical', 'backup-snapshot');
    }
    let prepared: Prepared;
    try {
      prepared = preparedSchema.parse(JSON.parse(lastLine(prep.stdout)));
    } catch (err) {
      throw new FlowFailure('snapshot', `unexpected answer from etcd-snapshot.sh prepare on ${choice.instanceId}: ${err instanceof Error ? err.message : String(err)}`, 'Check the host scripts version.', 'critical', 'backup-snapshot');
    }
    staged = { instanceId: choice.instanceId, file: prepared.file };
    Object.assign(out.ms, prepared.ms);
    Object.assign(out, { revision: prepared.status.revision, keys: prepared.keys, rawSize: prepared.rawSize, size: prepared.size, compressor: prepared.compressor });
    say('snapshot', 'ok', `revision ${prepared.status.revision}, ${prepared.keys ?? '?'} keys; ${prepared.rawSize} → ${prepared.size} bytes (${prepared.compressor}); trial restore running`);

    // 3. Upload straight from the master through a URL signed for this one file, once the
    //    master has the trial restore's verdict.
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
      const why = lastLine(up.stderr) || up.status;
      if (/trial restore failed/.test(up.stderr)) throw corruptSnapshot(cluster, choice.member, why);
      if (/trial restore/.test(why)) {
        throw new FlowFailure('verify', `the snapshot of ${cluster} from ${choice.member} could not be verified: ${why}`,
          'Check the master\'s disk space and load; the upload was abandoned and the previous good backups are kept.', 'critical', 'backup-verify');
      }
      throw new FlowFailure('upload', `upload of ${key} from ${choice.instanceId} failed: ${why}`,
        'Check the master\'s route to S3 (VPC endpoint or NAT) and the bucket policy; the previous good backups are kept.', 'critical', 'backup-upload');
    }
    staged = null; // the master removes its files after a successful upload
    const uploaded = uploadedSchema.parse(JSON.parse(lastLine(up.stdout)));
    out.ms.upload = deps.clock.now() - tu;
    out.ms.verify = uploaded.verifyMs;
    out.ms.put = Math.round(uploaded.seconds * 1000); // the PUT itself, as curl timed it
    say('verify', 'ok', `trial restore passed (${uploaded.verifyMs} ms, beside compression and signing)`);

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
    // Stopped near the Lambda deadline: nothing partial is ever visible in S3 (the upload
    // happens only after the verdict, and is checked); the run still cleans up and says so.
    const aborted = deps.signal?.aborted === true;
    const f = aborted
      ? new FlowFailure('deadline', `the backup of ${cluster} was stopped before the Lambda deadline (last step done: ${run.lastDone}): ${err instanceof Error ? err.message : String(err)}`,
        'The next scheduled run starts over. If this repeats, the snapshot does not fit one Lambda run (15 min): check the DB size (`quorum-keeper status`), defragment, and the master\'s route to S3.', 'warning', 'backup-deadline')
      : err instanceof FlowFailure ? err : new FlowFailure('backup', err instanceof Error ? err.message : String(err), 'See the function\'s log for the full error.', 'critical', 'backup-error');
    out.failure = { step: f.step, message: f.message, action: f.action };
    say(f.step, 'fail', f.message);
    if (staged) {
      // Its own short budget, not the (possibly aborted) run's signal: the master must not keep
      // a snapshot of the whole cluster lying around.
      await runHostScript(deps.ssm, deps.scripts, staged.instanceId, 'etcd-snapshot.sh', ['discard', '--work-dir', settings.workDir, '--file', staged.file],
        hostRunOpts({ timings: deps.timings }, aborted ? 20 : 120))
        .catch(() => undefined);
    }
    await deps.alerter.alert({
      severity: f.severity, cluster, flow: 'backup', step: f.step, summary: `etcd backup failed: ${f.message}`.slice(0, 400), action: f.action,
      dedupeKey: `${cluster}#${f.dedupe}`, ...(out.member ? { member: out.member } : {}),
    });
  }

  // 5. Retention and freshness, from one complete listing (not after the deadline: the next run).
  if (deps.signal?.aborted) out.pruneSkipped = 'stopped before the Lambda deadline';
  else Object.assign(out, await pruneBackups(deps, cluster, settings));
  out.ms.total = deps.clock.now() - t0;
  return out;
}

function corruptSnapshot(cluster: string, member: string, why: string): FlowFailure {
  return new FlowFailure('verify', `the snapshot of ${cluster} taken from ${member} FAILED VERIFICATION and was discarded: ${why}`,
    'etcd produced a snapshot that does not restore: check the member\'s disk and `etcdctl alarm list` (CORRUPT); the previous good backups are kept.',
    'critical', 'backup-corrupt');
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
