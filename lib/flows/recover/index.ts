/**
 * Quorum-loss recovery (issue 30): read what each slot can still do for quorum, judge it
 * (lib/domain/recovery.ts), and — for a cluster that opted in, or an operator's `recover` —
 * carry the verdict out:
 *
 *   start  → members whose etcd is down on their own data are started (nothing discarded);
 *   restore → one alert before (the copy chosen and why, the revisions lost, how to roll back),
 *             the surviving member's data copied to S3 as a verified backup (its original stays
 *             untouched, set aside by the restore), the same restore flow as the CLI's (lock,
 *             journal, revision bump, identity, registration), one alert after;
 *   unfinished → the interrupted restore is finished with its own snapshot and token.
 *
 * Hosts are asked only when quorum is not proven (a quorate cluster costs nothing here).
 */
import type { Alerter } from '../../aws/alerts';
import { type BackupStore } from '../../aws/backups';
import type { RestoreJournal } from '../../aws/restore-journal';
import type { Clock } from '../../clock';
import { judgeQuorum, type QuorumJudgement } from '../../domain/judge';
import {
  describeSource, type HostWord, judgeRecovery, type RecoverySettings, type RecoveryVerdict, type RestoreVerdict, type SlotChance, slotChances,
} from '../../domain/recovery';
import type { ClusterView } from '../../domain/view';
import { backupCluster, type BackupDeps, type BackupSettings } from '../backup';
import type { HostFlowDeps } from '../deps';
import { contextOf, readHosts } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';
import type { FlowRun } from '../run';
import { type RestoreDeps, type RestoreSummary, restoreCluster } from '../restore';

/** What the recovery reads beyond the view: the hosts, and the newest backup's revision. */
export type RecoveryReadDeps = { observe: Pick<ObservePorts, 'hosts'>; clock: Clock; signal?: AbortSignal } & Partial<Pick<HostFlowDeps, 'objects'>> & { journal?: RestoreJournal };

/** The view the recovery reads (backups null: no bucket). */
export type RecoveryView = Pick<ClusterView, 'slots' | 'etcd' | 'claims' | 'volumes' | 'records' | 'at' | 'cluster'> & { backups: ClusterView['backups'] | null };

export interface RecoveryMemory {
  /** When quorum was first seen lost (null: not before this run). */
  lostSince: number | null;
  highestSeen: number | null;
  /** When a start on own data was first tried, by instance ID. */
  startedAt: Readonly<Record<string, number>>;
}

export interface RecoveryReading {
  verdict: RecoveryVerdict;
  quorum: QuorumJudgement;
  chances: SlotChance[];
  /** The client URL each running member answered on (by slot): where a survivor's copy is taken. */
  clientUrls: Record<string, string>;
  /** The highest revision seen, this run included. */
  highestSeen: number | null;
}

/**
 * The recovery verdict for one cluster, from its view and what earlier runs remembered. The view
 * needs no hosts part: they are asked here, and only when the view does not prove quorum.
 */
export async function readRecovery(deps: RecoveryReadDeps, view: RecoveryView, mem: RecoveryMemory, settings: RecoverySettings, store?: BackupStore): Promise<RecoveryReading> {
  const q0 = judgeQuorum(view.etcd, view);
  const statusOf = (member: string) => view.etcd.status.statuses.find((s) => s.memberId === view.claims[member]?.id);
  const live = view.etcd.status.statuses.map((s) => s.revision).filter((r): r is number => r !== null);
  const probed = 'error' in view.records ? null : view.records.highestRevision;
  const highestSeen = Math.max(mem.highestSeen ?? 0, probed ?? 0, ...live) || null;
  if (q0.state === 'quorate') return { verdict: { kind: 'none', why: q0.why }, quorum: q0, chances: [], clientUrls: {}, highestSeen };
  const answered: Record<string, number | null> = {};
  const clientUrls: Record<string, string> = {};
  for (const slot of view.slots) {
    const st = statusOf(slot.member);
    if (st) { answered[slot.member] = st.revision; clientUrls[slot.member] = st.endpoint; }
  }
  // Quorum not proven: the masters whose member did not answer are asked what runs there and what
  // their volume holds — evidence for the one quorum rule, and each slot's chance.
  const hosts = await readHosts(deps.observe, view, { of: 'silent', offlineRevision: true }, contextOf(deps));
  const quorum = judgeQuorum(view.etcd, { ...view, hosts });
  const words: Record<string, HostWord> = {};
  for (const slot of view.slots) {
    const said = slot.instanceId ? hosts[slot.instanceId] : undefined;
    if (said && 'report' in said) words[slot.member] = said.report;
  }
  const records = 'error' in view.records ? {} : view.records.bySlot;
  const awaitingDr = Object.fromEntries(Object.entries(records).flatMap(([m, r]) => (r.awaitingDr ? [[m, { hasData: r.awaitingDr.hasData }]] : [])));
  const chances = slotChances({
    slots: view.slots, answered, volumes: new Set(Object.keys(view.volumes)), awaitingDr, hosts: words, startedAt: mem.startedAt, now: view.at,
  }, settings);
  const newest = !view.backups || 'error' in view.backups ? undefined : view.backups.usable.at(-1);
  const meta = newest && store && deps.objects ? (await deps.objects.head(store, newest.key).catch(() => null))?.meta ?? null : null;
  const unfinished = (await deps.journal?.get(view.cluster)) ?? null;
  const verdict = judgeRecovery({
    now: view.at, quorum, chances, lostSince: mem.lostSince, highestSeen,
    newestBackup: newest && meta ? { key: newest.key, revision: meta.revision, takenAt: newest.takenAt.getTime() } : null, settings,
    unfinished: unfinished ? { token: unfinished.token, snapshotKey: unfinished.snapshotKey } : null,
  });
  return { verdict, quorum, chances, clientUrls, highestSeen };
}

export type RecoverDeps = RestoreDeps & BackupDeps & { alerter: Alerter };

export interface RecoverOutcome {
  result: 'restored' | 'failed';
  /** The copy restored: the survivor's fresh backup, or the backup chosen. */
  snapshotKey?: string;
  token: string;
  summary?: RestoreSummary;
  failure?: string;
}

const stamp = (ms: number) => new Date(ms).toISOString().replace(/[-:]/g, '').slice(0, 15);

/**
 * Carries out a restore verdict (or finishes an interrupted restore): the same restore flow as
 * the CLI's, with no confirmation — the verdict is the consent, given by the cluster's opt-in or
 * the operator's `recover`. Alerts before and after; never throws for a failed recovery (the
 * alert says what happened and how to roll back).
 */
export async function recoverCluster(deps: RecoverDeps, cluster: string, verdict: RestoreVerdict | Extract<RecoveryVerdict, { kind: 'unfinished' }>, settings: Pick<BackupSettings, 'store' | 'workDir' | 'compressor' | 'retention' | 'staleAfterSec'>, clientUrl?: string): Promise<RecoverOutcome> {
  const token = verdict.kind === 'unfinished' ? verdict.token : `${cluster}-recover-${stamp(deps.clock.now())}`.slice(0, 128);
  const rollback = `quorum-keeper restore --cluster ${cluster} --rollback ${token}`;
  // De-duplicated per cluster and step (not per token: a recovery that fails again on the next
  // run gets a new token, and must not page again every five minutes); the one after, per token.
  const say = (severity: 'critical' | 'warning', step: string, summary: string, action: string) => deps.alerter.alert({
    severity, cluster, flow: 'recover', step, summary: summary.slice(0, 600), action, dedupeKey: `${cluster}/recover/${step}${step === 'done' ? `/${token}` : ''}`,
  });
  if (verdict.kind === 'restore') {
    await say('critical', 'start', `${cluster} lost quorum ${verdict.lostForSec} s ago and cannot get it back by itself (${verdict.why}). Quorum Keeper is restoring it from ${describeSource(verdict.source)}: ${verdict.chosenBecause}. Revisions lost: ${verdict.revisionsLost} (highest ever seen ${verdict.highest}).`,
      `Every member's current data is kept aside. To undo once it is done: \`${rollback}\`. Watch \`quorum-keeper status --cluster ${cluster}\`.`);
  }
  let snapshotKey: string;
  if (verdict.kind === 'unfinished') snapshotKey = verdict.snapshotKey;
  else if (verdict.source.kind === 'backup') snapshotKey = verdict.source.key;
  else {
    // The survivor's data, copied first (a verified snapshot in S3); its original is untouched
    // until the restore sets it aside, never deleted.
    const src = verdict.source;
    if (!clientUrl) return failed(`no client URL is known for ${src.member}: its copy cannot be taken`);
    const copy = await backupCluster(deps, cluster, { ...settings }, { from: { member: src.member, instanceId: src.instanceId, clientUrl } });
    if (copy.result !== 'uploaded' || !copy.key) return failed(`the copy of ${src.member}'s data failed at ${copy.failure?.step ?? '?'}: ${copy.failure?.message ?? 'unknown'}; nothing was restored`);
    snapshotKey = copy.key;
  }
  try {
    const summary = await restoreCluster(deps, { cluster, snapshot: snapshotKey, store: settings.store, workDir: settings.workDir, force: false, token, confirm: () => Promise.resolve(true) });
    await say('warning', 'done', `${cluster} is restored from ${snapshotKey} (token ${token}): revision ${summary.revision ?? '?'}${summary.revisionBump ? ` (bumped by ${summary.revisionBump})` : ''}, ${summary.plan.members.length} members healthy${summary.discardedAfterRevision ? `; the newest data set aside was ${summary.discardedAfterRevision} revisions ahead` : ''}.`,
      `Restart every kube-apiserver if the revision was not bumped; check \`quorum-keeper status --cluster ${cluster}\`. To undo: \`${rollback}\` (the set-aside data is never deleted by Quorum Keeper).`);
    return { result: 'restored', snapshotKey, token, summary };
  } catch (err) {
    return failed(err instanceof Error ? err.message : String(err));
  }

  async function failed(why: string): Promise<RecoverOutcome> {
    await say('critical', 'failed', `the recovery of ${cluster} did not complete: ${why}`,
      `Read \`quorum-keeper recover --cluster ${cluster} --plan\`; finish by hand with \`quorum-keeper restore --cluster ${cluster}\`, or undo with \`${rollback}\` if members were restored.`);
    return { result: 'failed', token, failure: why };
  }
}

/**
 * Starts a member's etcd on its own data while quorum is lost (the caller holds its slot's lock),
 * if it still does not run there: an existing data dir ignores the initial-cluster settings, so
 * the member comes back as itself. Nothing is discarded.
 */
export async function startOnOwnData(deps: Pick<HostFlowDeps, 'hosts'>, opts: ReturnType<FlowRun['hostOpts']>, member: string, instanceId: string): Promise<{ started: boolean; detail: string }> {
  const st = await deps.hosts.run(instanceId, { kind: 'member-status' }, opts);
  if (st.running) return { started: false, detail: `etcd already runs on ${instanceId}` };
  if (!st.hasData) return { started: false, detail: `no member data on ${instanceId}'s volume: not started` };
  await deps.hosts.run(instanceId, { kind: 'member-start', name: member, initialCluster: `${member}=${st.peerUrl}`, state: 'existing' }, opts);
  return { started: true, detail: `etcd of ${member} started on ${instanceId} on its own data` };
}
