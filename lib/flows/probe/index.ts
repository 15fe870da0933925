/**
 * Watchdog probe of one cluster: one survey command on the first answering master (etcd
 * member list, every member's status and health, alarms, the kube-system leader-election
 * Leases read from that master's API server, and the certificate every member serves), judged by
 * the pure `assessHealth`. The raft term and leader seen are remembered between probes
 * (DynamoDB) to count elections.
 *
 * Read-only: a probe never changes the cluster. What it finds becomes metrics; the CloudWatch
 * alarms on those metrics are the alert path (see serverless.yml and deploy/alarms.js).
 */
import type { Clock } from '../../clock';
import type { ProbeMemoryStore } from '../../aws/probe-memory';
import { assessHealth, type HealthAssessment } from '../../domain/health';
import { contextOf, observeCluster } from '../../observe/observe';
import type { ObservePorts } from '../../observe/ports';

/** What the probe reads through: the slots and etcd (records, when there is a state table, for identity). */
export type ProbePorts = Pick<ObservePorts, 'fleet' | 'etcd'> & Partial<Pick<ObservePorts, 'records'>>;
import type { HostFlowDeps } from '../deps';
import { FlowRun } from '../run';

export interface ProbeDeps {
  /** The one observation's ports: the probe asks for etcd only (the slots come with every view). */
  observe: ProbePorts;
  clock: Clock;
  timings: HostFlowDeps['timings'];
  memory: ProbeMemoryStore;
  signal?: AbortSignal;
}

export interface ProbeSettings {
  /** kube-system Leases to watch. */
  components: readonly string[];
  /** etcd --quota-backend-bytes (default 2 GiB). */
  quotaBytes: number;
}

export interface ProbeOutcome {
  cluster: string;
  at: string;
  /** The master the survey ran on; null when none answered. */
  via: { member: string; instanceId: string } | null;
  /** Masters skipped on the way, and why. */
  tried: string[];
  slots: number;
  health: HealthAssessment;
  ms: number;
}

export async function probeCluster(deps: ProbeDeps, cluster: string, settings: ProbeSettings): Promise<ProbeOutcome> {
  const t0 = deps.clock.now();
  const r = new FlowRun(deps, { owner: 'probe' });
  const view = await r.step('survey', async () => {
    const v = await observeCluster(deps.observe, cluster, { etcd: { leases: settings.components, certs: true } }, contextOf(deps));
    return { value: v, detail: v.etcd.via ? `through ${v.etcd.via.member}` : 'no master answered' };
  });
  const { etcd } = view;
  const previous = await deps.memory.get(cluster);
  const now = view.at;
  const health = assessHealth({
    members: etcd.members,
    status: etcd.status,
    alarms: etcd.alarms,
    leases: etcd.leases,
    components: settings.components,
    now,
    quotaBytes: settings.quotaBytes,
    previous,
    certificates: etcd.certs,
  });
  // Leases that could not be read keep what an earlier probe saw.
  const leases = { ...(previous?.leases ?? {}) };
  for (const l of health.leases) if (l.state === 'ok' || l.state === 'stalled') leases[l.component] = { holder: l.holder, renewTime: l.renewTime };
  // The highest revision ever seen: what a quorum-loss recovery counts the revisions it loses from.
  const highestRevision = Math.max(previous?.highestRevision ?? 0, ...etcd.status.statuses.map((x) => x.revision ?? 0));
  if (health.raftTerm !== null) await deps.memory.put(cluster, { raftTerm: health.raftTerm, leaderId: health.leaderId, leases, ...(highestRevision > 0 ? { highestRevision } : {}) });
  return {
    cluster, at: new Date(now).toISOString(), via: etcd.via ? { member: etcd.via.member, instanceId: etcd.via.instanceId } : null, tried: etcd.tried,
    slots: view.slots.length, health, ms: deps.clock.now() - t0,
  };
}
