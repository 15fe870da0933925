/**
 * The backup's steps: choose the source, prepare the snapshot on that master, upload it only once
 * its trial restore passed, and check what S3 stored.
 */
import { wallNow } from '../../clock';
import type { Alerter } from '../../aws/alerts';
import { type BackupMeta, type BackupStore, backupKey } from '../../aws/backups';
import { type HostAnswer, HostFailure } from '../../host/commands';
import { chooseBackupSource } from '../../domain/backup-source';
import type { RetentionPolicy } from '../../domain/retention';
import { contextOf, observeCluster } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';
import type { HostFlowDeps } from '../deps';
import { FlowFailure } from '../run';
import { type Step } from '../steps';

export interface BackupDeps extends HostFlowDeps {
  /** The one observation's ports: the source is chosen from a view of etcd and the slots' identities. */
  observe: Pick<ObservePorts, 'fleet' | 'etcd' | 'backups'> & Partial<Pick<ObservePorts, 'records'>>;
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

type Prepared = HostAnswer<'snapshot-prepare'>;

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
    const prepared = await deps.hosts.run(src.instanceId, { kind: 'snapshot-prepare', workDir: settings.workDir, endpoint: src.clientUrl, compressor: settings.compressor },
      r.hostOpts(1800, { executionTimeoutSec: 1800 })).catch((err: unknown) => {
      if (!(err instanceof HostFailure)) throw err;
      if (err.kind === 'corrupt') throw corruptSnapshot(cluster, src.member, err.detail);
      if (err.kind === 'answer' || err.kind === 'truncated') {
        throw new FlowFailure('snapshot', `unexpected answer from etcd-snapshot.sh prepare on ${src.instanceId}: ${err.detail}`, 'Check the host scripts version.', 'critical', 'backup-snapshot', { cause: err });
      }
      throw new FlowFailure('snapshot', `snapshot of ${cluster} on ${src.member} failed: ${err.detail}`,
        'Read the command output in SSM Run Command history for this instance; the previous good backups are kept.', 'critical', 'backup-snapshot', { cause: err });
    });
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
    const signed = await deps.objects.presignUpload(settings.store, key, meta, prepared.sha256Base64, { signingDate: new Date(await wallNow(deps.clock)) });
    const tu = deps.clock.now();
    const uploaded = await deps.hosts.run(src.instanceId, { kind: 'snapshot-upload', workDir: settings.workDir, file: prepared.file, uploadUrl: signed.url, headers: signed.headers },
      r.hostOpts(1800, { executionTimeoutSec: 1800 })).catch((err: unknown) => {
      if (!(err instanceof HostFailure)) throw err;
      if (err.kind === 'corrupt') throw corruptSnapshot(cluster, src.member, err.detail);
      if (err.kind === 'unverified') {
        throw new FlowFailure('verify', `the snapshot of ${cluster} from ${src.member} could not be verified: ${err.detail}`,
          'Check the master\'s disk space and load; the upload was abandoned and the previous good backups are kept.', 'critical', 'backup-verify', { cause: err });
      }
      throw new FlowFailure('upload', `upload of ${key} from ${src.instanceId} failed: ${err.detail}`,
        'Check the master\'s route to S3 (VPC endpoint or NAT) and the bucket policy; the previous good backups are kept.', 'critical', 'backup-upload', { cause: err });
    });
    s.staged = null; // the master removes its files after a successful upload
    s.key = key;
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
    const stored = await deps.objects.head(settings.store, key);
    const problems = [
      stored.size !== prepared.size && `size ${stored.size} ≠ ${prepared.size}`,
      stored.encryption !== 'aws:kms' && `encryption ${stored.encryption ?? 'none'} ≠ aws:kms`,
      !kmsMatches(settings.store.kmsKeyId, stored.kmsKeyId) && `KMS key ${stored.kmsKeyId ?? 'none'} ≠ ${settings.store.kmsKeyId ?? ''}`,
      stored.checksumSha256 !== undefined && stored.checksumSha256 !== prepared.sha256Base64 && `checksum ${stored.checksumSha256} ≠ ${prepared.sha256Base64}`,
      stored.meta?.revision !== prepared.status.revision && 'metadata missing or different',
    ].filter((p): p is string => typeof p === 'string');
    if (problems.length) {
      await deps.objects.delete(settings.store, [key]);
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

