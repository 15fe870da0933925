/**
 * Disaster recovery: rebuild a whole cluster from one verified backup — the operator's
 * `restore`, `recover`, or the reconciler's automatic recovery of a cluster that opted in
 * (lib/flows/recover). Types and reads in plan.ts, the steps in steps.ts.
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
import type { HostCommand } from '../../host/commands';
import { patterns } from '../../validate';
import { hostRunOpts } from '../deps';
import { FlowRun } from '../run';
import { planSteps, runSteps } from '../steps';
import { type Prepared, readCluster, readMasters, refusal, type RestoreDeps, RestoreRefused, type RestorePlan, type RestoreRequest, type RestoreSummary, resolveSnapshot } from './plan';
import { restoreSteps } from './steps';

export { refusal, type RestoreDeps, RestoreFailed, type RestorePlan, RestoreRefused, type RestoreRequest, type RestoreSummary } from './plan';
export { restoreSteps } from './steps';



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
  const prepared = await readMasters(deps, cluster);
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
