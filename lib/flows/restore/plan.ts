/**
 * The restore's types and what it reads before anything changes: the masters and their word on
 * etcd, the cluster judged by the one quorum rule, the snapshot and its metadata, and why a
 * restore is refused without --force.
 */
import type { RestoreJournal } from '../../aws/restore-journal';
import { type BackupMeta, type BackupStore, parseBackupKey, usableBackups } from '../../aws/backups';
import { wallNow } from '../../clock';
import { judgeQuorum, type QuorumJudgement } from '../../domain/judge';
import type { ClusterView } from '../../domain/view';
import { contextOf, observeCluster } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';
import type { FlowDeps, HostFlowDeps } from '../deps';
import type { PlannedStep } from '../steps';



/**
 * The restore's slice of the one deps type. Without a state table it has no lock, journal or
 * records (the markers are still written); without a load balancer it registers nothing.
 */
export type RestoreDeps = HostFlowDeps & Partial<Pick<FlowDeps, 'memberIds' | 'targets' | 'lock' | 'awaitingDr'>> & {
  /** The one observation's ports: the slots, their volumes, etcd as a survey reads it, the masters' word, identity (with records: recorded IDs), the backups. */
  observe: Pick<ObservePorts, 'fleet' | 'etcd' | 'volumes' | 'hosts' | 'backups'> & Partial<Pick<ObservePorts, 'records'>>;
  /** The restore's journal: an interrupted restore is finished with its own snapshot and token (absent: no state table). */
  journal?: RestoreJournal;
};

export interface RestoreRequest {
  cluster: string;
  /** 'latest' or the S3 key of one backup of this cluster. */
  snapshot: string;
  store: BackupStore;
  workDir: string;
  /** Restore even though the cluster still has quorum. */
  force: boolean;
  /** Shown the plan; returns whether to go ahead (the CLI asks, or --yes). */
  confirm: (plan: RestorePlan) => Promise<boolean>;
  /** New cluster token (default: derived from the cluster name and the time). */
  token?: string;
  /** How long to wait for the restored cluster to elect a leader. */
  leaderTimeoutSec?: number;
}

export interface RestorePlan {
  cluster: string;
  token: string;
  snapshot: { key: string; meta: BackupMeta };
  /**
   * What the operator should weigh before confirming: with `latest`, the backup taken just before
   * it when that one is at a HIGHER revision (a restore in between, a member far behind, or a
   * clock that was wrong when one of them was dated).
   */
  warnings: string[];
  members: Array<{ member: string; instanceId: string; peerUrl: string }>;
  /** What the quorum check found, in one line (the one quorum rule's `why`). */
  health: string;
  /**
   * The one quorum rule's verdict: `quorate` (refused without --force), `lost`, or `unknown` —
   * Quorum Keeper cannot see (members silent, its client certificate refused, agents down):
   * refused without --force too, and never called "no quorum".
   */
  quorum: QuorumJudgement['state'];
  hasQuorum: boolean;
  /**
   * The highest revision a member answered with now (null: none answered). Over a live cluster,
   * `liveRevision - snapshot revision` is what the restore would discard at the least.
   */
  liveRevision: number | null;
  /**
   * An interrupted restore this one finishes (its journal): same snapshot, same token; the quorum
   * gate does not apply (the cluster that answers may be its own half-restored one).
   */
  resuming: { startedAt: Date } | null;
  /** Every master's tool can raise the restored revision (else none does: one revision for all). */
  canBump: boolean;
  /** What the restore will do once confirmed, step by step (walked from `restoreSteps`). */
  steps: PlannedStep[];
}

export interface RestoreSummary {
  result: 'restored' | 'aborted';
  plan: RestorePlan;
  members: Array<{ member: string; instanceId: string; previousRevision: number | null; asideDir: string | null }>;
  /** Revision of the restored cluster when verified (>= the snapshot's). */
  revision?: number;
  keysAtSnapshotRevision?: number;
  /**
   * Revisions the restore discarded: the newest set-aside member data was this many revisions
   * ahead of the snapshot (null when no member had readable data).
   */
  discardedAfterRevision: number | null;
  /** By how much the restored revision was raised and marked compacted (0: this etcd cannot; etcd 3.4). */
  revisionBump?: number;
  ms: number;
}

/** A restore that was not started: nothing was changed. */
export class RestoreRefused extends Error {
  override readonly name = 'RestoreRefused';
}

/** A restore that failed after etcd was stopped: says how to roll back. */
export class RestoreFailed extends Error {
  override readonly name = 'RestoreFailed';
  constructor(message: string, readonly rollback: string) {
    super(`${message}\n${rollback}`);
  }
}

export interface Prepared {
  masters: Array<{ member: string; instanceId: string; peerUrl: string; clientUrl: string }>;
  initialCluster: string;
}

/** The view a restore prepares from: the slots and every live master's own word. */
type MastersView = Pick<ClusterView, 'slots' | 'hosts'>;

/** Every slot with an InService instance whose agent answered, and the URLs each advertises (refused otherwise). */
export function prepareMasters(deps: Pick<RestoreDeps, 'tags'>, cluster: string, view: MastersView): Prepared {
  const { slots } = view;
  if (slots.length === 0) throw new RestoreRefused(`no master Auto Scaling groups are tagged ${deps.tags.cluster}=${cluster}`);
  const missing = slots.filter((s) => !s.instanceId).map((s) => s.member);
  if (missing.length) throw new RestoreRefused(`slot(s) ${missing.join(', ')} have no InService instance: bring every master back (the replacement flow mounts its volume) before restoring`);
  const masters = slots.map((s) => {
    const instanceId = s.instanceId!;
    const said = view.hosts[instanceId];
    if (!said || 'unavailable' in said) throw new RestoreRefused(`${s.member} (${instanceId}) could not be asked: ${said ? said.unavailable : 'not read'}`);
    return { member: s.member, instanceId, peerUrl: said.report.peerUrl, clientUrl: said.report.clientUrl };
  });
  return { masters, initialCluster: masters.map((m) => `${m.member}=${m.peerUrl}`).join(',') };
}

/** What a restore reads: the slots and every live master's word (120 s each: a busy host may be slow to answer). */
const MASTERS = { of: 'all', maxWaitSec: 120 } as const;

/** The masters a rollback runs on. */
export async function readMasters(deps: RestoreDeps, cluster: string): Promise<Prepared> {
  return prepareMasters(deps, cluster, await observeCluster(deps.observe, cluster, { hosts: MASTERS }, contextOf(deps)));
}

/** The cluster's slots and etcd, judged by the one quorum rule with the hosts' testimony. */
export async function readCluster(deps: RestoreDeps, cluster: string): Promise<{ prepared: Prepared; q: QuorumJudgement; liveRevision: number | null; seen: string }> {
  const view = await observeCluster(deps.observe, cluster, { etcd: {}, claims: true, hosts: MASTERS }, contextOf(deps));
  const prepared = prepareMasters(deps, cluster, view);
  const q = judgeQuorum(view.etcd, view);
  const revisions = view.etcd.status.statuses.map((x) => x.revision).filter((r): r is number => r !== null);
  const seen = [...view.etcd.tried, ...view.etcd.status.unreachable.map((u) => `${u.endpoint}: ${u.error}`)].slice(0, 6).join('; ');
  return { prepared, q, liveRevision: revisions.length ? Math.max(...revisions) : null, seen };
}

/** A backup's metadata, checked against its object and its cluster; refused otherwise. */
async function readMeta(deps: RestoreDeps, req: RestoreRequest, key: string): Promise<BackupMeta> {
  const stored = await deps.objects.head(req.store, key);
  if (!stored.meta) throw new RestoreRefused(`backup ${key} cannot be used: ${stored.metaProblem ?? 'no metadata'}`);
  if (stored.meta.cluster !== req.cluster) throw new RestoreRefused(`backup ${key} says it belongs to cluster ${stored.meta.cluster}`);
  if (stored.size !== stored.meta.size) throw new RestoreRefused(`backup ${key} is ${stored.size} bytes, its metadata says ${stored.meta.size}`);
  return stored.meta;
}

/** `latest` cross-checked by revision against the backup before it (issue 18). */
async function revisionWarnings(deps: RestoreDeps, req: RestoreRequest, chosen: { key: string; meta: BackupMeta }, before: string | undefined): Promise<string[]> {
  if (!before) return [];
  const prev = await readMeta(deps, req, before).catch(() => null);
  if (!prev || prev.revision <= chosen.meta.revision) return [];
  return [`the latest backup is at revision ${chosen.meta.revision}, BELOW the one taken before it (${before}, revision ${prev.revision}): the cluster was restored in between, or one of them came from a member far behind or was dated by a wrong clock. If ${before} is the one you want, name it with --snapshot.`];
}

export async function resolveSnapshot(deps: RestoreDeps, req: RestoreRequest): Promise<{ key: string; meta: BackupMeta; warnings: string[] }> {
  let key = req.snapshot;
  let before: string | undefined;
  if (key === 'latest') {
    const { usable, futureDated } = usableBackups(await deps.observe.backups.list(req.store, req.cluster), await wallNow(deps.clock));
    const newest = usable.at(-1);
    const skipped = futureDated.length ? ` (${futureDated.length} future-dated key(s) left out, e.g. ${futureDated.at(-1)!.key}: written by a machine whose clock ran ahead; name one with --snapshot to use it)` : '';
    if (!newest) throw new RestoreRefused(`no usable backup of ${req.cluster} in s3://${req.store.bucket}/${req.store.prefix}/${req.cluster}/${skipped}`);
    if (skipped) deps.progress({ step: 'snapshot', status: 'wait', detail: `latest is ${newest.key}${skipped}` });
    key = newest.key;
    before = usable.at(-2)?.key;
  } else if (!parseBackupKey(req.store, req.cluster, key)) {
    throw new RestoreRefused(`${key} is not a backup key of cluster ${req.cluster} (expected ${req.store.prefix}/${req.cluster}/<YYYYMMDDTHHMMSSZ>-<member>.db.zst|gz)`);
  }
  const chosen = { key, meta: await readMeta(deps, req, key) };
  return { ...chosen, warnings: await revisionWarnings(deps, req, chosen, before) };
}

export function refusal(plan: Omit<RestorePlan, 'steps'>): string {
  const since = plan.snapshot.meta.takenAt.toISOString();
  const lost = plan.liveRevision !== null && plan.liveRevision > plan.snapshot.meta.revision ? ` — at least ${plan.liveRevision - plan.snapshot.meta.revision} revisions (live revision ${plan.liveRevision}, snapshot ${plan.snapshot.meta.revision})` : '';
  if (plan.quorum === 'quorate') {
    return `cluster ${plan.cluster} still has quorum (${plan.health}): a restore would discard every write since ${since}${lost}. Use --force only if you are sure.`;
  }
  return `${plan.health}. Quorum Keeper restores only a cluster it can see has lost quorum: check its access (the SSM agents, its etcd client certificate and the masters' etcd). A restore would discard every write since ${since}${lost}; use --force only if you know quorum is lost.`;
}

