/**
 * The reconciler's read of one cluster and its plan (the pure `planReconcile` decides). Read-
 * only: `quorum-keeper plan` prints it; executing it is the reconciler's job (next step).
 *
 * First-seen times come from the world where it records them (a `Pending:Wait` instance's
 * launch time) and otherwise from what an earlier run remembered (strays), so a plan is the
 * same whoever computes it.
 */
import { type EC2Client, paginateDescribeInstances } from '@aws-sdk/client-ec2';
import { type BackupStore, listBackups } from '../aws/backups';
import { clusterHealth } from '../domain/membership';
import { planReconcile, type ReconcilePlan, type ReconcileSettings, type ReconcileWorld } from '../domain/reconcile';
import { hasNoLeader } from '../etcd';
import { clusterMasters } from './cluster-masters';
import { hostRunOpts } from './deps';
import { clusterVolumes, type StatusDeps } from './status';
import { surveyCluster } from './survey';

export interface ReconcileReadDeps extends StatusDeps {
  /** Whether a flow holds the cluster lock; absent = assume not. */
  lockHeld?: (cluster: string) => Promise<boolean>;
  /** First-seen times remembered by earlier runs. */
  remembered?: (cluster: string) => Promise<Record<string, number>>;
}

/** State and launch time of a few instances (one call each: an unknown ID fails a batch call). */
async function instanceFacts(ec2: EC2Client, ids: readonly string[]): Promise<Map<string, { state: string; launchedAt: number | null }>> {
  const out = new Map<string, { state: string; launchedAt: number | null }>();
  await Promise.all(ids.map(async (id) => {
    try {
      for await (const page of paginateDescribeInstances({ client: ec2 }, { InstanceIds: [id] })) {
        for (const r of page.Reservations ?? []) {
          for (const i of r.Instances ?? []) if (i.InstanceId === id) out.set(id, { state: i.State?.Name ?? 'unknown', launchedAt: i.LaunchTime?.getTime() ?? null });
        }
      }
    } catch (err) {
      if ((err as { name?: string }).name !== 'InvalidInstanceID.NotFound') throw err;
      out.set(id, { state: 'terminated', launchedAt: null }); // gone from EC2's memory: terminated long ago
    }
  }));
  return out;
}

export async function readWorld(deps: ReconcileReadDeps, cluster: string, opts: { store?: BackupStore } = {}): Promise<ReconcileWorld> {
  const now = deps.clock.now();
  const [masters, volumes] = await Promise.all([clusterMasters(deps.asg, deps.tags, cluster), clusterVolumes(deps.ec2, deps.tags, cluster)]);
  const pending = masters.flatMap((m) => m.instances.filter((i) => i.lifecycleState === 'Pending:Wait').map((i) => i.instanceId));
  const attached = [...volumes.values()].map((v) => v.attachedTo).filter((x): x is string => x !== null);
  const candidates = masters.filter((m) => m.instanceId).map((m) => ({ member: m.member, instanceId: m.instanceId! }));
  const [facts, { survey }, backups, lockHeld, remembered] = await Promise.all([
    instanceFacts(deps.ec2, [...new Set([...pending, ...attached])]),
    surveyCluster(deps.ssm, deps.scripts, candidates, hostRunOpts(deps, 60)),
    opts.store && deps.s3 ? listBackups(deps.s3, opts.store, cluster).then((l) => l, () => 'unknown' as const) : Promise.resolve('unknown' as const),
    deps.lockHeld ? deps.lockHeld(cluster) : Promise.resolve(false),
    deps.remembered ? deps.remembered(cluster) : Promise.resolve({} as Record<string, number>),
  ]);
  const firstSeen: Record<string, number> = { ...remembered };
  for (const id of pending) {
    const launched = facts.get(id)?.launchedAt;
    if (launched) firstSeen[`pending#${id}`] = launched;
  }
  const members = survey?.members?.members ?? null;
  const h = members ? clusterHealth(members, survey!.status) : null;
  const healthyIds = h?.leader ? survey!.status.statuses.filter((s) => !hasNoLeader(s) && s.leader === h.leader).map((s) => s.memberId) : [];
  const newest = backups === 'unknown' ? 'unknown' : backups.at(-1);
  return {
    cluster, now,
    slots: masters.map((m) => ({ member: m.member, asg: m.asg, instances: m.instances })),
    volumes: [...volumes].map(([member, v]) => ({
      member, volumeId: v.volumeId, state: v.state === 'attached' || v.state === 'attaching' ? 'in-use' : v.state, attachedTo: v.attachedTo,
      attachedInstanceState: v.attachedTo ? (facts.get(v.attachedTo)?.state ?? 'terminated') : null,
    })),
    etcd: { members: members?.map((m) => ({ id: m.id, name: m.name, isLearner: m.isLearner })) ?? null, leader: h?.leader ?? null, healthyIds },
    firstSeen, lockHeld,
    backupAgeSec: newest === 'unknown' ? 'unknown' : newest ? Math.max(0, Math.round((now - newest.takenAt.getTime()) / 1000)) : null,
  };
}

export async function planCluster(deps: ReconcileReadDeps, cluster: string, settings: ReconcileSettings, opts: { store?: BackupStore } = {}): Promise<{ world: ReconcileWorld; plan: ReconcilePlan }> {
  const world = await readWorld(deps, cluster, opts);
  return { world, plan: planReconcile(world, settings) };
}
