/**
 * The backup's steps: choose the source, prepare the snapshot on that master, upload it only once
 * its trial restore passed, and check what S3 stored.
 */
import { wallNow } from '../../clock';
import { z } from 'zod';
import type { Alerter } from '../../aws/alerts';
import { type BackupMeta, type BackupStore, backupKey, deleteBackups, headBackup, presignUpload } from '../../aws/backups';
import { lastLine, runHostScript } from '../../aws/run-command';
import { chooseBackupSource } from '../../domain/backup-source';
import type { RetentionPolicy } from '../../domain/retention';
import { contextOf, observeCluster } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';
import type { HostFlowDeps } from '../deps';
import { FlowFailure } from '../run';
import { type Step } from '../steps';

export interface BackupDeps extends HostFlowDeps {
  /** The one observation's ports: the source is chosen from a view of etcd and the slots' identities. */
  observe: Pick<ObservePorts, 'fleet' | 'etcd'> & Partial<Pick<ObservePorts, 'records'>>;
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

export interface BackupState {
  readonly deps: BackupDeps;
  readonly cluster: string;
  readonly settings: BackupSettings;
  /** What the run reports, filled in as the steps go. */
  readonly out: BackupOutcome;
  /** The snapshot prepared on a master and not uploaded yet: discarded if the run fails. */
  staged: { instanceId: string; file: string } | null;
  source?: { member: string; instanceId: string; clientUrl: string };
  prepared?: Prepared;
  takenAt?: Date;
  key?: string;
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

const sourceStep: Step<BackupState> = {
  name: 'source',
  async run(r, s) {
    // A healthy follower of a cluster that has a leader and quorum.
    const { deps, cluster, out } = s;
    const view = await observeCluster(deps.observe, cluster, { etcd: {}, claims: true }, contextOf(deps));
    const masters = view.slots;
    const { members } = view.etcd;
    if (!members) {
      const inService = masters.filter((m) => m.instanceId).length;
      const tried = view.etcd.tried;
      throw new FlowFailure('source', `no etcd member of ${cluster} answers (${masters.length} slots, ${inService} with an InService instance${tried.length ? `: ${tried.join('; ')}` : ''}): no backup taken`,
        'The cluster may have lost quorum: check `quorum-keeper status`; the newest existing backup is what a restore would use.', 'critical', 'backup-source');
    }
    // Which member each slot is, by identity (etcd names need not be the slot tags).
    const claims = view.claims;
    const slots = new Map(masters.filter((m) => m.instanceId && claims[m.member]).map((m) => [claims[m.member]!.id, { slot: m.member, instanceId: m.instanceId! }]));
    const choice = chooseBackupSource(members, view.etcd.status, slots);
    if (choice.kind === 'none') {
      throw new FlowFailure('source', `${cluster}: ${choice.reason}; no backup taken`, 'Restore the cluster\'s health first; see `quorum-keeper status`.', 'critical', 'backup-source');
    }
    out.member = choice.member;
    out.role = choice.role;
    s.source = choice;
    return { detail: `${choice.member} (${choice.role}) on ${choice.instanceId}` };
  },
};

const snapshotStep: Step<BackupState> = {
  name: 'snapshot',
  async run(r, s) {
    // Snapshot, compress, hash on the master; the trial restore starts there too.
    const { deps, cluster, settings, out } = s;
    const src = s.source!;
    s.takenAt = new Date(await wallNow(deps.clock));
    const prep = await runHostScript(deps.ssm, deps.scripts, src.instanceId, 'etcd-snapshot.sh',
      ['prepare', '--work-dir', settings.workDir, '--endpoint', src.clientUrl, '--compressor', settings.compressor], r.runOpts(1800, { executionTimeoutSec: 1800 }));
    if (prep.exitCode !== 0) {
      const why = lastLine(prep.stderr) || prep.status;
      if (/not a valid snapshot/.test(prep.stderr)) throw corruptSnapshot(cluster, src.member, why);
      throw new FlowFailure('snapshot', `snapshot of ${cluster} on ${src.member} failed: ${why}`,
        'Read the command output in SSM Run Command history for this instance; the previous good backups are kept.', 'critical', 'backup-snapshot');
    }
    let prepared: Prepared;
    try {
      prepared = preparedSchema.parse(JSON.parse(lastLine(prep.stdout)));
    } catch (err) {
      throw new FlowFailure('snapshot', `unexpected answer from etcd-snapshot.sh prepare on ${src.instanceId}: ${err instanceof Error ? err.message : String(err)}`, 'Check the host scripts version.', 'critical', 'backup-snapshot', { cause: err });
    }
    s.prepared = prepared;
    s.staged = { instanceId: src.instanceId, file: prepared.file };
    Object.assign(out.ms, prepared.ms);
    Object.assign(out, { revision: prepared.status.revision, keys: prepared.keys, rawSize: prepared.rawSize, size: prepared.size, compressor: prepared.compressor });
    return { detail: `revision ${prepared.status.revision}, ${prepared.keys ?? '?'} keys; ${prepared.rawSize} → ${prepared.size} bytes (${prepared.compressor}); trial restore running` };
  },
};

const verifyStep: Step<BackupState> = {
  name: 'verify',
  async run(r, s) {
    // Upload straight from the master through a URL signed for this one file, once the master
    // has the trial restore's verdict.
    const { deps, cluster, settings, out } = s;
    const src = s.source!;
    const prepared = s.prepared!;
    const meta: BackupMeta = {
      cluster, member: src.member, revision: prepared.status.revision, keys: prepared.keys, etcdVersion: prepared.etcdVersion,
      rawSize: prepared.rawSize, size: prepared.size, sha256: prepared.sha256, compressor: prepared.compressor, takenAt: s.takenAt!,
    };
    const key = backupKey(settings.store, cluster, src.member, s.takenAt!, prepared.compressor);
    const signed = await presignUpload(deps.s3, settings.store, key, meta, prepared.sha256Base64, { signingDate: new Date(await wallNow(deps.clock)) });
    const tu = deps.clock.now();
    const up = await runHostScript(deps.ssm, deps.scripts, src.instanceId, 'etcd-snapshot.sh', ['upload', '--work-dir', settings.workDir, '--file', prepared.file,
      '--upload-url-b64', Buffer.from(signed.url).toString('base64url'), '--headers-b64', Buffer.from(signed.headers.join('\n')).toString('base64url')], r.runOpts(1800, { executionTimeoutSec: 1800 }));
    if (up.exitCode !== 0) {
      const why = lastLine(up.stderr) || up.status;
      if (/trial restore failed/.test(up.stderr)) throw corruptSnapshot(cluster, src.member, why);
      if (/trial restore/.test(why)) {
        throw new FlowFailure('verify', `the snapshot of ${cluster} from ${src.member} could not be verified: ${why}`,
          'Check the master\'s disk space and load; the upload was abandoned and the previous good backups are kept.', 'critical', 'backup-verify');
      }
      throw new FlowFailure('upload', `upload of ${key} from ${src.instanceId} failed: ${why}`,
        'Check the master\'s route to S3 (VPC endpoint or NAT) and the bucket policy; the previous good backups are kept.', 'critical', 'backup-upload');
    }
    s.staged = null; // the master removes its files after a successful upload
    s.key = key;
    const uploaded = uploadedSchema.parse(JSON.parse(lastLine(up.stdout)));
    out.ms.upload = deps.clock.now() - tu;
    out.ms.verify = uploaded.verifyMs;
    out.ms.put = Math.round(uploaded.seconds * 1000); // the PUT itself, as curl timed it
    return { detail: `trial restore passed (${uploaded.verifyMs} ms, beside compression and signing)` };
  },
};

const uploadStep: Step<BackupState> = {
  name: 'upload',
  async run(_r, s) {
    // What S3 stored is what the master prepared.
    const { deps, settings, out } = s;
    const prepared = s.prepared!;
    const key = s.key!;
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
    return { detail: `s3://${settings.store.bucket}/${key} (${prepared.size} bytes, SSE-KMS, SHA-256 checked by S3)` };
  },
};

/** The backup, step by step. */
export const backupSteps = [sourceStep, snapshotStep, verifyStep, uploadStep] as const;

function corruptSnapshot(cluster: string, member: string, why: string): FlowFailure {
  return new FlowFailure('verify', `the snapshot of ${cluster} taken from ${member} FAILED VERIFICATION and was discarded: ${why}`,
    'etcd produced a snapshot that does not restore: check the member\'s disk and `etcdctl alarm list` (CORRUPT); the previous good backups are kept.',
    'critical', 'backup-corrupt');
}

