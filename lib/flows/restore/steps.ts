/**
 * The restore after consent, step by step: stop, inspect, restore, start, leader, verify,
 * identity, register (`planRestore` lists the same steps for the operator).
 */
import { APISERVER_PORT } from '../../host/layout';
import { wallNow } from '../../clock';
import type { HostAnswer, HostCommand } from '../../host/commands';
import { judgeQuorum } from '../../domain/judge';
import { revisionBump } from '../../domain/recovery';
import { contextOf, observeCluster } from '../../observe/observe';
import type { FlowRun } from '../run';
import type { Step } from '../steps';
import { type Prepared, type RestoreDeps, RestoreFailed, type RestorePlan, type RestoreRequest, type RestoreSummary } from './plan';



export interface RestoreState {
  readonly deps: RestoreDeps;
  readonly req: RestoreRequest;
  readonly plan: Omit<RestorePlan, 'steps'>;
  readonly prepared: Prepared;
  readonly summary: RestoreSummary;
  inspected?: Array<HostAnswer<'restore-inspect'>>;
}

export const rollbackNote = (cluster: string, token: string): string => [
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
      bumpRevision: bump, url: await deps.objects.presignDownload(req.store, plan.snapshot.key, { signingDate: new Date(await wallNow(deps.clock)) }),
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
    const targets = deps.targets;
    const tgs = targets ? await targets.groups(req.cluster) : [];
    if (!targets || tgs.length === 0) return { detail: 'no target group tagged for this cluster', skipped: true };
    const timeoutSec = req.leaderTimeoutSec ?? 300;
    await Promise.all(prepared.masters.map(async (m) => {
      await r.poll(`kube-apiserver /readyz on ${m.member}`, async () => ((await deps.hosts.run(m.instanceId, { kind: 'apiserver-ready' }, r.hostOpts(60))).ready ? true : undefined), { timeoutSec, intervalSec: 2 });
      for (const tg of tgs) await r.beating(targets.register(tg, m.instanceId, APISERVER_PORT, r.waitOpts(timeoutSec)));
    }));
    return { detail: `${prepared.masters.length} masters healthy in ${tgs.length} target group(s)` };
  },
  plan: () => ({ action: 'wait for kube-apiserver on every master, then register each healthy in the cluster\'s target groups' }),
}];

/** Why a restore is refused without --force: the cluster still has quorum, or Quorum Keeper cannot see. */
