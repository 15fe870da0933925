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
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { type Clock, wallNow } from '../clock';
import type { ProbeMemoryStore } from '../aws/probe-memory';
import { assessHealth, type HealthAssessment } from '../domain/health';
import type { HostScriptBundle } from '../host/command';
import { clusterMasters } from './cluster-masters';
import type { HostFlowDeps } from './deps';
import { FlowRun } from './run';
import { surveyCluster } from './survey';

export interface ProbeDeps {
  asg: AutoScalingClient;
  ssm: SSMClient;
  scripts: HostScriptBundle;
  clock: Clock;
  tags: HostFlowDeps['tags'];
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
  const masters = await clusterMasters(deps.asg, deps.tags, cluster);
  const candidates = masters.filter((m) => m.instanceId).map((m) => ({ member: m.member, instanceId: m.instanceId! }));
  const r = new FlowRun(deps, { owner: 'probe' });
  const { survey, tried } = await r.step('survey', async () => {
    const found = await surveyCluster(deps.ssm, deps.scripts, candidates, r.runOpts(60, { executionTimeoutSec: 60 }), settings.components, { certs: true });
    return { value: found, detail: found.survey ? `through ${found.survey.member}` : 'no master answered' };
  });
  const previous = await deps.memory.get(cluster);
  const now = await wallNow(deps.clock);
  const health = assessHealth({
    members: survey?.members?.members ?? null,
    status: survey?.status ?? { statuses: [], unreachable: [] },
    alarms: survey?.alarms ?? null,
    leases: survey?.leases ?? {},
    components: settings.components,
    now,
    quotaBytes: settings.quotaBytes,
    previous,
    certificates: survey?.certs ?? [],
  });
  // Leases that could not be read keep what an earlier probe saw.
  const leases = { ...(previous?.leases ?? {}) };
  for (const l of health.leases) if (l.state === 'ok' || l.state === 'stalled') leases[l.component] = { holder: l.holder, renewTime: l.renewTime };
  if (health.raftTerm !== null) await deps.memory.put(cluster, { raftTerm: health.raftTerm, leaderId: health.leaderId, leases });
  return {
    cluster, at: new Date(now).toISOString(), via: survey ? { member: survey.member, instanceId: survey.instanceId } : null, tried,
    slots: masters.length, health, ms: deps.clock.now() - t0,
  };
}
