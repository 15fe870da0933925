/**
 * Disaster recovery: rebuild a whole cluster from one verified backup. An operator command,
 * never automatic.
 *
 *   masters → quorum check by the one rule (lib/domain/judge.ts) over a survey and what each
 *   master says of its etcd: refuse unless quorum is seen lost — a quorate cluster and one that
 *   Quorum Keeper cannot see are both refused unless forced → snapshot
 *   (latest or a key) + its metadata → plan → confirmation → stop etcd everywhere → inspect
 *   (how new was the data we set aside?) → per master: download, SHA-256 check, restore with a
 *   NEW cluster token, old data dir moved aside → start all → leader → verify revision and key
 *   count against the backup's metadata → summary.
 *
 * Nothing is deleted: each member's previous data stays at <data>.pre-restore-<token>, and
 * `rollbackRestore` puts it back. Re-running with the same token is safe (members already
 * restored with it are left as they are).
 */
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { AwaitingDr } from '../../aws/held-hooks';
import { findTargetGroups, registerAndWait } from '../../aws/lb';
import type { ClusterLock } from '../../aws/lock';
import type { MemberIds } from '../../aws/member-ids';
import type { RestoreJournal } from '../../aws/restore-journal';
import { APISERVER_PORT } from '../../host/layout';
import { type BackupMeta, type BackupStore, headBackup, parseBackupKey, presignDownload, usableBackups } from '../../aws/backups';
import { wallNow } from '../../clock';
import type { HostAnswer, HostCommand } from '../../host/commands';
import { agentOnline } from '../../aws/ssm-agent';
import { judgeQuorum, liveInstanceIds, type QuorumJudgement } from '../../domain/judge';
import { revisionBump } from '../../domain/recovery';
import type { SlotView } from '../../domain/view';
import { contextOf, observeCluster } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';
import { patterns } from '../../validate';
import { type HostFlowDeps, hostRunOpts } from '../deps';
import { FlowRun } from '../run';
import { type PlannedStep, planSteps, runSteps, type Step } from '../steps';


export type RestoreDeps = HostFlowDeps & {
  /** The one observation's ports: the slots, their volumes, etcd as a survey reads it, identity (with records: recorded IDs). */
  observe: Pick<ObservePorts, 'fleet' | 'etcd' | 'volumes'> & Partial<Pick<ObservePorts, 'records'>>;
  /** Where each slot's member ID is recorded (absent: no state table; the markers are still written). */
  memberIds?: MemberIds;
  /** The load balancer the restored masters are registered with (absent: not registered). */
  elb?: ElasticLoadBalancingV2Client;
  /** The cluster lock the whole restore holds (absent: no state table, no lock). */
  lock?: ClusterLock;
  /** The restore's journal: an interrupted restore is finished with its own snapshot and token (absent: no state table). */
  journal?: RestoreJournal;
  /** Where slots awaiting disaster recovery are recorded (cleared once restored). */
  awaitingDr?: AwaitingDr;
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

interface Prepared {
  masters: Array<{ member: string; instanceId: string; peerUrl: string; clientUrl: string }>;
  initialCluster: string;
  /** Slots whose master says its etcd is not running (evidence for the quorum rule). */
  etcdStoppedOn: string[];
}

/** Every slot with an InService instance whose agent answers, the URLs each advertises and whether its etcd runs. */
async function readMasters(deps: RestoreDeps, cluster: string, slots: ReadonlyArray<Pick<SlotView, 'member' | 'instanceId' | 'instances'>>): Promise<Prepared> {
  if (slots.length === 0) throw new RestoreRefused(`no master Auto Scaling groups are tagged ${deps.tags.cluster}=${cluster}`);
  const missing = slots.filter((s) => !s.instanceId).map((s) => s.member);
  if (missing.length) throw new RestoreRefused(`slot(s) ${missing.join(', ')} have no InService instance: bring every master back (the replacement flow mounts its volume) before restoring`);
  const masters = await Promise.all(slots.map(async (s) => {
    const instanceId = s.instanceId!;
    if (!(await agentOnline(deps.ssm, instanceId))) throw new RestoreRefused(`the SSM agent of ${s.member} (${instanceId}) is not online`);
    const st = await deps.hosts.run(instanceId, { kind: 'member-status' }, hostRunOpts(deps, 120));
    // Evidence only: its etcd known stopped, and no other master of the slot (one still retiring)
    // that could be running the slot's member.
    const alone = liveInstanceIds(s).every((i) => i === instanceId);
    return { member: s.member, instanceId, peerUrl: st.peerUrl, clientUrl: st.clientUrl, stopped: st.stopped && alone };
  }));
  return {
    masters: masters.map(({ stopped: _s, ...m }) => m),
    initialCluster: masters.map((m) => `${m.member}=${m.peerUrl}`).join(','),
    etcdStoppedOn: masters.filter((m) => m.stopped).map((m) => m.member),
  };
}

/** The cluster's slots and etcd, judged by the one quorum rule with the hosts' testimony. */
async function readCluster(deps: RestoreDeps, cluster: string): Promise<{ prepared: Prepared; q: QuorumJudgement; liveRevision: number | null; seen: string }> {
  const view = await observeCluster(deps.observe, cluster, { etcd: {}, claims: true }, contextOf(deps));
  const prepared = await readMasters(deps, cluster, view.slots);
  const q = judgeQuorum(view.etcd, { slots: view.slots, claims: view.claims, etcdStoppedOn: prepared.etcdStoppedOn });
  const revisions = view.etcd.status.statuses.map((x) => x.revision).filter((r): r is number => r !== null);
  const seen = [...view.etcd.tried, ...view.etcd.status.unreachable.map((u) => `${u.endpoint}: ${u.error}`)].slice(0, 6).join('; ');
  return { prepared, q, liveRevision: revisions.length ? Math.max(...revisions) : null, seen };
}

/** A backup's metadata, checked against its object and its cluster; refused otherwise. */
async function readMeta(deps: RestoreDeps, req: RestoreRequest, key: string): Promise<BackupMeta> {
  const stored = await headBackup(deps.s3, req.store, key);
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

async function resolveSnapshot(deps: RestoreDeps, req: RestoreRequest): Promise<{ key: string; meta: BackupMeta; warnings: string[] }> {
  let key = req.snapshot;
  let before: string | undefined;
  if (key === 'latest') {
    const { usable, futureDated } = usableBackups(await deps.backups.list(req.store, req.cluster), await wallNow(deps.clock));
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

export async function planRestore(deps: RestoreDeps, req: RestoreRequest): Promise<{ plan: RestorePlan; prepared: Prepared }> {
  if (!patterns.clusterName.test(req.cluster)) throw new RestoreRefused(`invalid cluster name ${JSON.stringify(req.cluster)}`);
  // An interrupted restore goes on with its own snapshot and token (its journal), never a new pair.
  const resuming = (await deps.journal?.get(req.cluster)) ?? null;
  if (resuming) {
    if (req.token && req.token !== resuming.token) throw new RestoreRefused(`a restore of ${req.cluster} with token ${resuming.token} was interrupted: run it again without --token (or with that one) to finish it, or roll it back: --rollback ${resuming.token}`);
    if (req.snapshot !== 'latest' && req.snapshot !== resuming.snapshotKey) throw new RestoreRefused(`a restore of ${req.cluster} from ${resuming.snapshotKey} (token ${resuming.token}) was interrupted: finish it with --snapshot ${resuming.snapshotKey}, or roll it back first: --rollback ${resuming.token}`);
  }
  const token = resuming?.token ?? req.token ?? `${req.cluster}-restore-${new Date(deps.clock.now()).toISOString().replace(/[-:]/g, '').slice(0, 15)}`.slice(0, 128);
  if (!patterns.token.test(token)) throw new RestoreRefused(`invalid token ${JSON.stringify(token)}`);
  const [{ prepared, q, liveRevision, seen }, { warnings, ...snapshot }] = await Promise.all([
    readCluster(deps, req.cluster), resolveSnapshot(deps, resuming ? { ...req, snapshot: resuming.snapshotKey } : req),
  ]);
  for (const w of warnings) deps.progress({ step: 'snapshot', status: 'wait', detail: w });
  // Every master ready before anything stops anywhere: a restore that fails on one master after
  // etcd was stopped everywhere is an outage of its own.
  // (Resumed: members already restored hold both data dirs, so room is not asked again.)
  const meta = snapshot.meta;
  const room = resuming ? { size: 0, rawSize: 0 } : { size: meta.size, rawSize: meta.rawSize };
  const ready = await Promise.all(prepared.masters.map(async (m) => ({
    m, out: await deps.hosts.run(m.instanceId, { kind: 'restore-preflight', workDir: req.workDir, ...room, compressor: meta.compressor }, hostRunOpts(deps, 120)),
  })));
  const unready = ready.filter((x) => !x.out.ready);
  if (unready.length) {
    throw new RestoreRefused(`not every master is ready to restore ${snapshot.key}; this run stopped nothing: ${unready.map((x) => `${x.m.member} (${x.m.instanceId}): ${x.out.problems.join('; ')}`).join(' | ')}`);
  }
  // One bump for all or none: a master whose tool cannot bump (etcd 3.4) would otherwise restore
  // different revisions than the others.
  const canBump = ready.every((x) => x.out.canBump);
  const health = q.state === 'unknown' ? `CANNOT SEE whether ${req.cluster} has quorum: ${q.why}${seen ? ` (${seen})` : ''}` : q.why;
  const plan = {
    cluster: req.cluster, token, snapshot, warnings, members: prepared.masters.map(({ member, instanceId, peerUrl }) => ({ member, instanceId, peerUrl })),
    health, quorum: q.state, hasQuorum: q.state === 'quorate', liveRevision,
    resuming: resuming ? { startedAt: new Date(resuming.startedAt) } : null, canBump,
  };
  // The steps the restore will take, from the very list it runs.
  const steps = await planSteps(new FlowRun({ ...deps, progress: () => undefined }), { deps, req, plan, prepared, summary: { result: 'aborted', plan: { ...plan, steps: [] }, members: [], discardedAfterRevision: null, ms: 0 } }, restoreSteps);
  return { plan: { ...plan, steps }, prepared };
}

interface RestoreState {
  readonly deps: RestoreDeps;
  readonly req: RestoreRequest;
  readonly plan: Omit<RestorePlan, 'steps'>;
  readonly prepared: Prepared;
  readonly summary: RestoreSummary;
  inspected?: Array<HostAnswer<'restore-inspect'>>;
}

const rollbackNote = (cluster: string, token: string): string => [
  `Every member's previous data is kept at <data dir>.pre-restore-${token}. To roll back:`,
  `  quorum-keeper restore --cluster ${cluster} --rollback ${token}`,
  `(or on each master: etcd-member.sh stop; etcd-restore.sh rollback --token ${token}; start etcd as before).`,
].join('\n');

/** One host step on every master at once; a failure says how to roll back. */
function onMasters<C extends HostCommand>(r: FlowRun, s: RestoreState, what: string, command: (m: Prepared['masters'][number]) => C | Promise<C>,
  masters: Prepared['masters'] = s.prepared.masters): Promise<Array<HostAnswer<C['kind']>>> {
  // With the run's heartbeat: a download of a large snapshot must not outlive the cluster lock.
  return Promise.all(masters.map(async (m) => r.beating(s.deps.hosts.run(m.instanceId, await command(m), r.hostOpts(1800, { executionTimeoutSec: 1800 }))).catch((err: unknown) => {
    throw new RestoreFailed(`${what} on ${m.member} (${m.instanceId}) failed: ${err instanceof Error ? err.message : String(err)}`, rollbackNote(s.req.cluster, s.plan.token));
  })));
}

const names = (s: RestoreState) => s.prepared.masters.map((m) => m.member).join(', ');

/** The restore after consent, step by step (`planRestore` lists the same steps for the operator). */
export const restoreSteps: ReadonlyArray<Step<RestoreState>> = [{
  name: 'stop',
  // From here on, the rollback note applies.
  async run(r, s) {
    await onMasters(r, s, 'stopping etcd', () => ({ kind: 'member-stop' }));
    return { detail: `etcd stopped on ${s.prepared.masters.length} masters` };
  },
  plan: (_r, s) => ({ action: `stop etcd on ${names(s)}` }),
}, {
  name: 'inspect',
  async run(r, s) {
    s.inspected = await onMasters(r, s, 'inspecting the data dir', () => ({ kind: 'restore-inspect' }));
    // A member already restored by this restore (resumed) holds the restore's data, not its own.
    const previous = s.inspected.filter((i) => i.restored?.token !== s.plan.token).map((i) => i.revision).filter((x): x is number => x !== null);
    s.summary.discardedAfterRevision = previous.length ? Math.max(0, Math.max(...previous) - s.plan.snapshot.meta.revision) : null;
    return { detail: s.summary.discardedAfterRevision === null ? 'no member had readable data' : `the newest data was ${s.summary.discardedAfterRevision} revisions ahead of the snapshot` };
  },
  plan: () => ({ action: 'read how far each member\'s data got (to report what the restore discards)' }),
}, {
  name: 'restore',
  async run(r, s) {
    const { deps, req, plan, prepared } = s;
    const meta = plan.snapshot.meta;
    // One bump for every member, beyond any revision seen (their own data, the live answers) —
    // or, resumed, the one this restore already applied on some member.
    const applied = s.inspected!.find((i) => i.restored?.token === plan.token)?.restored?.bump;
    const bump = applied ?? (plan.canBump ? revisionBump(meta.revision, [plan.liveRevision, ...s.inspected!.filter((i) => i.restored?.token !== plan.token).map((i) => i.revision)]) : 0);
    const restored = await onMasters(r, s, 'download + restore', async (m) => ({
      kind: 'restore-restore' as const, workDir: req.workDir, sha256: meta.sha256, compressor: meta.compressor, name: m.member, initialCluster: prepared.initialCluster, token: plan.token,
      bumpRevision: bump, url: await presignDownload(deps.s3, req.store, plan.snapshot.key, { signingDate: new Date(await wallNow(deps.clock)) }),
    }));
    const bumps = [...new Set(restored.map((x) => x.bumped))];
    if (bumps.length > 1) {
      throw new RestoreFailed(`the members were restored with different revision bumps (${restored.map((x, i) => `${prepared.masters[i]!.member}: ${x.bumped}`).join(', ')}): their etcd tools differ`, rollbackNote(req.cluster, plan.token));
    }
    s.summary.revisionBump = bumps[0] ?? 0;
    s.summary.members = prepared.masters.map((m, i) => ({ member: m.member, instanceId: m.instanceId, previousRevision: s.inspected![i]!.revision, asideDir: restored[i]!.asideDir ?? null }));
    const bumped = s.summary.revisionBump ? `; revisions bumped by ${s.summary.revisionBump} and marked compacted` : '; revisions not bumped (this etcd has no --bump-revision: restart every kube-apiserver)';
    return { detail: `${prepared.masters.map((m, i) => `${m.member}: revision ${restored[i]!.revision ?? '?'}; previous data ${restored[i]!.asideDir ? `kept at ${restored[i]!.asideDir}` : 'none'}`).join('; ')}${bumped}` };
  },
  plan: (_r, s) => ({ action: `on each master: download ${s.plan.snapshot.key}, check its SHA-256, restore it with the new token ${s.plan.token}, revisions bumped past any seen and marked compacted (etcd's recovery guide); the current data dir is moved aside (not deleted)` }),
}, {
  name: 'start',
  async run(r, s) {
    await onMasters(r, s, 'starting etcd', (m) => ({ kind: 'member-start', name: m.member, initialCluster: s.prepared.initialCluster, state: 'new', token: s.plan.token }));
    return { detail: `etcd started on ${s.prepared.masters.length} masters with token ${s.plan.token}` };
  },
  plan: () => ({ action: 'start etcd on every master as a new cluster' }),
}, {
  name: 'leader',
  async run(r, s) {
    const { deps, prepared } = s;
    const n = prepared.masters.length;
    await r.poll('a leader with every restored member healthy', async () => {
      // The one quorum rule over a fresh survey: a leader that every restored member follows.
      const view = await observeCluster(deps.observe, s.req.cluster, { etcd: {} }, contextOf(deps));
      const h = judgeQuorum(view.etcd);
      return h.state === 'quorate' && h.healthyVoters === n ? true : undefined;
    }, { timeoutSec: s.req.leaderTimeoutSec ?? 120, intervalSec: 1 }).catch((err: unknown) => {
      if (r.aborted) throw err;
      throw new RestoreFailed(`the restored cluster did not become healthy: ${err instanceof Error ? err.message : String(err)}`, rollbackNote(s.req.cluster, s.plan.token));
    });
    return { detail: `leader elected, ${n}/${n} members healthy` };
  },
  plan: (_r, s) => ({ action: `wait up to ${s.req.leaderTimeoutSec ?? 120} s for a leader with every member healthy` }),
}, {
  name: 'verify',
  // Against the backup's metadata (writes may already be arriving: compare at the snapshot's
  // revision, which a restore keeps).
  async run(r, s) {
    const meta = s.plan.snapshot.meta;
    // The restored revision: the snapshot's, raised by the bump (older ones are marked compacted).
    const at = meta.revision + (s.summary.revisionBump ?? 0);
    const [v] = await onMasters(r, s, 'verification', () => ({ kind: 'restore-verify', revision: at }), s.prepared.masters.slice(0, 1));
    if (v!.revision < at || (meta.keys !== null && v!.keysAtRevision !== meta.keys)) {
      throw new RestoreFailed(`verification failed: revision ${v!.revision} (snapshot ${meta.revision}${at !== meta.revision ? `, bumped to ${at}` : ''}), ${v!.keysAtRevision} keys at the restored revision (backup metadata: ${meta.keys ?? 'unknown'})`, rollbackNote(s.req.cluster, s.plan.token));
    }
    s.summary.revision = v!.revision;
    s.summary.keysAtSnapshotRevision = v!.keysAtRevision;
    // Restored and verified: the restore is over. What follows (identity, registration) is
    // follow-up work that must never make a later run resume — and stop — this healthy cluster.
    await s.deps.journal?.end(s.req.cluster);
    return { detail: `revision ${v!.revision} ≥ ${meta.revision}; ${v!.keysAtRevision} keys at the snapshot revision${meta.keys === null ? '' : ' = backup metadata'}` };
  },
  plan: (_r, s) => ({ action: `check the restored revision (≥ ${s.plan.snapshot.meta.revision}) and key count (${s.plan.snapshot.meta.keys ?? 'unknown'}) against the backup's metadata` }),
}, {
  name: 'identity',
  // Every member has a new member ID now. A slot's identity lives in its volume's marker and in
  // the state table: both are rewritten, or the next replacement of a master would find them
  // naming a member that no longer exists and refuse the volume as an identity conflict.
  async run(r, s) {
    const { deps, req, prepared } = s;
    const view = await observeCluster(deps.observe, req.cluster, { etcd: {}, volumes: true }, contextOf(deps));
    const problems: string[] = [];
    const done: string[] = [];
    for (const m of prepared.masters) {
      // The restore started each member under its slot's name: here the name is the identity.
      const id = view.etcd.members?.find((x) => x.name === m.member)?.id;
      const v = view.volumes[m.member];
      if (!id) { problems.push(`${m.member}: no member of that name in the restored cluster`); continue; }
      if (!v || v.attachedTo !== m.instanceId) { problems.push(`${m.member}: its volume is not attached to ${m.instanceId}`); continue; }
      try {
        await r.beating(deps.hosts.run(m.instanceId, { kind: 'volume-record-member-id', memberId: id, volumeId: v.volumeId, cluster: req.cluster, member: m.member }, r.hostOpts(120)));
        await deps.memberIds?.record(req.cluster, m.member, id, `restore ${s.plan.token} on ${m.instanceId}`);
        await deps.awaitingDr?.clear(req.cluster, m.member);
        done.push(`${m.member}=${id}`);
      } catch (err) {
        if (r.aborted) throw err;
        problems.push(`${m.member}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (problems.length) {
      throw new Error(`the cluster is restored and verified, but the new member IDs could not all be recorded (${problems.join('; ')}): run \`quorum-keeper adopt --cluster ${req.cluster}\`, which records each slot's member in its marker and the state table, before the next master is replaced`);
    }
    return { detail: `new member IDs in every marker${deps.memberIds ? ' and the state table' : ''}: ${done.join(', ')}` };
  },
  plan: (_r, s) => ({ action: `record each member's new ID in its volume's marker${s.deps.memberIds ? ' and the state table' : ''}; clear the awaiting-DR records` }),
}, {
  name: 'register',
  // Masters brought in awaiting DR were never registered with the load balancer: once each API
  // server is ready on the restored etcd, it is.
  async run(r, s) {
    const { deps, req, prepared } = s;
    const elb = deps.elb;
    const tgs = elb ? await findTargetGroups(elb, deps.tags.cluster, req.cluster) : [];
    if (!elb || tgs.length === 0) return { detail: 'no target group tagged for this cluster', skipped: true };
    const timeoutSec = req.leaderTimeoutSec ?? 300;
    await Promise.all(prepared.masters.map(async (m) => {
      await r.poll(`kube-apiserver /readyz on ${m.member}`, async () => ((await deps.hosts.run(m.instanceId, { kind: 'apiserver-ready' }, r.hostOpts(60))).ready ? true : undefined), { timeoutSec, intervalSec: 2 });
      for (const tg of tgs) await r.beating(registerAndWait(elb, tg, m.instanceId, APISERVER_PORT, r.waitOpts(timeoutSec)));
    }));
    return { detail: `${prepared.masters.length} masters healthy in ${tgs.length} target group(s)` };
  },
  plan: () => ({ action: 'wait for kube-apiserver on every master, then register each healthy in the cluster\'s target groups' }),
}];

/** Why a restore is refused without --force: the cluster still has quorum, or Quorum Keeper cannot see. */
export function refusal(plan: Omit<RestorePlan, 'steps'>): string {
  const since = plan.snapshot.meta.takenAt.toISOString();
  const lost = plan.liveRevision !== null && plan.liveRevision > plan.snapshot.meta.revision ? ` — at least ${plan.liveRevision - plan.snapshot.meta.revision} revisions (live revision ${plan.liveRevision}, snapshot ${plan.snapshot.meta.revision})` : '';
  if (plan.quorum === 'quorate') {
    return `cluster ${plan.cluster} still has quorum (${plan.health}): a restore would discard every write since ${since}${lost}. Use --force only if you are sure.`;
  }
  return `${plan.health}. Quorum Keeper restores only a cluster it can see has lost quorum: check its access (the SSM agents, its etcd client certificate and the masters' etcd). A restore would discard every write since ${since}${lost}; use --force only if you know quorum is lost.`;
}

export async function restoreCluster(deps: RestoreDeps, req: RestoreRequest): Promise<RestoreSummary> {
  const t0 = deps.clock.now();
  const run = new FlowRun(deps, { owner: 'restore' });
  const { plan, prepared } = await planRestore(deps, req);
  run.say('plan', 'ok', `snapshot ${plan.snapshot.key} (revision ${plan.snapshot.meta.revision}); cluster: ${plan.health}`);
  if (plan.quorum !== 'lost' && !plan.resuming && !req.force) throw new RestoreRefused(refusal(plan));
  const summary: RestoreSummary = { result: 'aborted', plan, members: [], discardedAfterRevision: null, ms: 0 };
  if (await req.confirm(plan)) {
    // The whole restore under the cluster lock (extended by the run's heartbeat): no replacement
    // or repair changes membership meanwhile, and no second restore runs. Decided again under it:
    // quorum may have come back while the operator read the plan.
    const restore = async () => {
      const journal = deps.journal;
      const open = await journal?.get(req.cluster);
      if (!plan.resuming) {
        if (open) throw new RestoreRefused(`a restore of ${req.cluster} (token ${open.token}) began meanwhile: nothing was changed`);
        const again = await readCluster(deps, req.cluster);
        if (again.q.state !== 'lost' && !req.force) throw new RestoreRefused(`read again under the cluster lock, ${req.cluster} ${again.q.state === 'quorate' ? 'has quorum again' : 'cannot be seen'} (${again.q.why}): nothing was changed`);
        const mastersOf = (p: Prepared) => p.masters.map((m) => `${m.member}=${m.instanceId}@${m.peerUrl}`).join(',');
        if (mastersOf(again.prepared) !== mastersOf(prepared)) {
          throw new RestoreRefused(`read again under the cluster lock, ${req.cluster}'s masters changed since the plan (${mastersOf(prepared)} → ${mastersOf(again.prepared)}): nothing was changed; run the restore again`);
        }
        await journal?.begin({ cluster: req.cluster, token: plan.token, snapshotKey: plan.snapshot.key });
      } else if (open?.token !== plan.token) {
        throw new RestoreRefused(`the interrupted restore of ${req.cluster} was finished or rolled back meanwhile: nothing was changed`);
      }
      await runSteps(run, { deps, req, plan, prepared, summary }, restoreSteps);
    };
    if (!deps.lock) {
      run.say('lock', 'skip', 'no state table: the restore runs without the cluster lock');
      await restore();
    } else if ((await run.hold(req.cluster, 'try', async () => { await restore(); return true; })) === null) {
      throw new RestoreRefused(`another flow holds ${req.cluster}'s cluster lock (a replacement or repair changing membership, or another restore): nothing was changed; run the restore again once it is done`);
    }
    summary.result = 'restored';
  }
  summary.ms = deps.clock.now() - t0;
  return summary;
}

/** Puts every member's pre-restore data back and starts etcd on it again. */
export async function rollbackRestore(deps: RestoreDeps, cluster: string, token: string): Promise<Array<{ member: string; instanceId: string }>> {
  if (!patterns.token.test(token)) throw new RestoreRefused(`invalid token ${JSON.stringify(token)}`);
  const view = await observeCluster(deps.observe, cluster, {}, contextOf(deps));
  const prepared = await readMasters(deps, cluster, view.slots);
  const onEach = (command: (m: Prepared['masters'][number]) => HostCommand) => Promise.all(prepared.masters.map((m) => deps.hosts.run(m.instanceId, command(m), hostRunOpts(deps))));
  const rollback = async () => {
    await onEach(() => ({ kind: 'member-stop' }));
    try {
      await onEach(() => ({ kind: 'restore-rollback', token }));
    } finally {
      // etcd is started again on every member whatever happened (the old data dirs carry their
      // own membership: the initial-cluster settings are ignored); a failure above is still said.
      await onEach((m) => ({ kind: 'member-start', name: m.member, initialCluster: prepared.initialCluster, state: 'existing' }));
    }
    if ((await deps.journal?.get(cluster))?.token === token) await deps.journal?.end(cluster);
    return true;
  };
  // Under the cluster lock, as the restore itself; a rolled-back restore is over (its journal goes).
  const run = new FlowRun(deps, { owner: 'restore-rollback' });
  if (!deps.lock) await rollback();
  else if ((await run.hold(cluster, 'try', rollback)) === null) {
    throw new RestoreRefused(`another flow holds ${cluster}'s cluster lock: nothing was rolled back; run the rollback again once it is done`);
  }
  deps.progress({ step: 'rollback', status: 'ok', detail: `previous data restored on ${prepared.masters.length} masters; etcd started` });
  return prepared.masters.map(({ member, instanceId }) => ({ member, instanceId }));
}
