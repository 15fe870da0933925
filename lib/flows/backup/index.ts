/**
 * Scheduled etcd backup of one cluster. The steps, in order (`backupSteps`, in backup-steps.ts):
 *
 *   source → snapshot → verify (upload only if the trial restore passed) → upload (what S3
 *   stored is what was prepared); then retention and freshness.
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
import { wallNow } from '../../clock';
import { type BackupObject, usableBackups } from '../../aws/backups';
import type { BackupConfig } from '../../config';
import { decideRetention } from '../../domain/retention';
import { type BackupDeps, type BackupOutcome, type BackupSettings, type BackupState, backupSteps } from './steps';

export type { BackupDeps, BackupOutcome, BackupSettings } from './steps';
import { hostRunOpts } from '../deps';
import { FlowFailure, FlowRun } from '../run';
import { runSteps } from '../steps';

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

/**
 * `from`: take the snapshot from this member, leader or not — the surviving copy a quorum-loss
 * recovery restores (the source step is skipped; the trial restore still decides). Such a run
 * prunes nothing: no backup is deleted in the middle of a disaster.
 */
export interface BackupOptions {
  from?: { member: string; instanceId: string; clientUrl: string };
}

export async function backupCluster(deps: BackupDeps, cluster: string, settings: BackupSettings, opts: BackupOptions = {}): Promise<BackupOutcome> {
  const t0 = deps.clock.now();
  const out: BackupOutcome = { cluster, result: 'failed', ms: { total: 0 }, newestGoodAgeSec: null, pruned: [], stale: false };
  const run = new FlowRun(deps, { owner: 'backup' });
  const s: BackupState = { deps, cluster, settings, out, staged: null, ...(opts.from ? { source: opts.from } : {}) };
  if (opts.from) out.member = opts.from.member;
  try {
    await runSteps(run, s, opts.from ? backupSteps.filter((x) => x.name !== 'source') : backupSteps);
    out.result = 'uploaded';
  } catch (err) {
    // Stopped near the Lambda deadline: nothing partial is ever visible in S3 (the upload
    // happens only after the verdict, and is checked); the run still cleans up and says so.
    const aborted = run.aborted;
    const f = aborted
      ? new FlowFailure('deadline', `the backup of ${cluster} was stopped before the Lambda deadline (last step done: ${run.lastDone}): ${err instanceof Error ? err.message : String(err)}`,
        'The next scheduled run starts over. If this repeats, the snapshot does not fit one Lambda run (15 min): check the DB size (`quorum-keeper status`), defragment, and the master\'s route to S3.', 'warning', 'backup-deadline', { cause: err })
      : err instanceof FlowFailure ? err : new FlowFailure('backup', err instanceof Error ? err.message : String(err), 'See the function\'s log for the full error.', 'critical', 'backup-error', { cause: err });
    out.failure = { step: f.step, message: f.message, action: f.action };
    if (aborted) run.say(f.step, 'fail', f.message);
    if (s.staged) {
      // Its own short budget, not the (possibly aborted) run's signal: the master must not keep
      // a snapshot of the whole cluster lying around.
      await deps.hosts.run(s.staged.instanceId, { kind: 'snapshot-discard', workDir: settings.workDir, file: s.staged.file }, hostRunOpts({ timings: deps.timings }, aborted ? 20 : 120))
        .catch(() => undefined);
    }
    await deps.alerter.alert({
      severity: f.severity, cluster, flow: 'backup', step: f.step, summary: `etcd backup failed: ${f.message}`.slice(0, 400), action: f.action,
      dedupeKey: `${cluster}#${f.dedupe}`, ...(out.member ? { member: out.member } : {}),
    });
  }

  // Retention and freshness, from one complete listing (not after the deadline: the next run).
  if (run.aborted) out.pruneSkipped = 'stopped before the Lambda deadline';
  else if (opts.from) out.pruneSkipped = 'a copy of a surviving member for a recovery: nothing pruned';
  else Object.assign(out, await pruneBackups(deps, cluster, settings, out.key && out.revision !== undefined ? { key: out.key, revision: out.revision } : undefined));
  out.ms.total = deps.clock.now() - t0;
  return out;
}

export type PruneOutcome = Pick<BackupOutcome, 'newestGoodAgeSec' | 'pruned' | 'pruneSkipped' | 'stale'>;

/**
 * Applies the retention policy to the cluster's backups and checks the newest one's age.
 * Deletes nothing unless the listing was complete; never deletes the newest good backup.
 */
export async function pruneBackups(deps: BackupDeps, cluster: string, settings: BackupSettings, uploaded?: { key: string; revision: number }): Promise<PruneOutcome> {
  const out: PruneOutcome = { newestGoodAgeSec: null, pruned: [], stale: false };
  let listing: BackupObject[];
  try {
    listing = await deps.observe.backups.list(settings.store, cluster);
  } catch (err) {
    out.pruneSkipped = `listing failed (${err instanceof Error ? err.message : String(err)}): nothing deleted`;
    deps.progress({ step: 'retention', status: 'skip', detail: out.pruneSkipped });
    return out;
  }
  const now = await wallNow(deps.clock);
  // Future-dated keys (written by a machine whose clock ran ahead) would look newest for hours:
  // they count for nothing here and are never deleted by retention; the operator is told.
  const { usable, futureDated } = usableBackups(listing, now);
  for (const f of futureDated) {
    await deps.alerter.alert({
      severity: 'warning', cluster, flow: 'backup', step: 'freshness',
      summary: `backup ${f.key} is dated ${f.takenAt.toISOString()}, after S3 stored it (${f.lastModified?.toISOString() ?? 'unknown'}): the clock of the machine that took it ran ahead; it is not used as the newest backup`,
      action: 'Find the machine with the wrong clock (a CLI run from a laptop?) and fix its time sync. Rename or delete the object if its data is not needed; Quorum Keeper never deletes it.',
      dedupeKey: `${cluster}#backup-future#${f.key}`,
    });
  }
  if (uploaded) await checkRevision(deps, cluster, settings, uploaded, usable.filter((b) => b.key !== uploaded.key).at(-1));
  const newest = usable.at(-1);
  out.newestGoodAgeSec = newest ? Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) : null;
  const decision = decideRetention(usable.map((b) => ({ key: b.key, takenAt: b.takenAt.getTime(), good: true })), settings.retention, now);
  if (decision.delete.length) {
    const failed = await deps.objects.delete(settings.store, decision.delete);
    const failedKeys = new Set(failed.map((f) => f.key));
    out.pruned = decision.delete.filter((k) => !failedKeys.has(k));
    if (failed.length) out.pruneSkipped = `${failed.length} deletions failed, e.g. ${failed[0]!.key}: ${failed[0]!.error}`;
  }
  deps.progress({ step: 'retention', status: 'ok', detail: `${listing.length} backups listed, ${decision.keep.size} kept, ${out.pruned.length} deleted${futureDated.length ? `, ${futureDated.length} future-dated left alone` : ''}` });

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

/**
 * A new backup whose revision is below the previous backup's holds older data than it (its
 * source lagged, or the cluster was re-created): flagged, so nobody restores it as "the newest"
 * without knowing. One HeadObject of the previous backup.
 */
async function checkRevision(deps: BackupDeps, cluster: string, settings: BackupSettings, uploaded: { key: string; revision: number }, previous: BackupObject | undefined): Promise<void> {
  if (!previous) return;
  const prev = await deps.objects.head(settings.store, previous.key).catch(() => null);
  const before = prev?.meta?.revision;
  if (before === undefined || uploaded.revision >= before) return;
  await deps.alerter.alert({
    severity: 'warning', cluster, flow: 'backup', step: 'revision',
    summary: `backup ${uploaded.key} is at revision ${uploaded.revision}, below the previous backup ${previous.key} (revision ${before}): it holds older data`,
    action: 'If the cluster was not re-created or restored, its source member lagged: compare `quorum-keeper status` (raft lag), and restore by key, not `latest`, until a newer backup exists.',
    dedupeKey: `${cluster}#backup-revision#${uploaded.key}`,
  });
}
