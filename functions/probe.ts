/**
 * Lambda entry for the watchdog probe (EventBridge schedule, default every minute). Thin:
 * validate configuration and the event; a scheduled run hands each cluster to its own
 * invocation (functions/fan-out.ts); probe the clusters named (a few at a time), publish each
 * one's health as CloudWatch metrics (EMF). The alarms on those metrics raise the alerts; a cluster
 * whose probe failed publishes no EtcdHasLeader value, which its alarm treats as breaching.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import pLimit from 'p-limit';
import { probeDeps } from '../lib/compose';
import { loadProbeConfig } from '../lib/config';
import { parseScheduledRequest } from '../lib/events/scheduled';
import { type ProbeOutcome, probeCluster } from '../lib/flows/probe';
import { asgClient, ddbClient, ssmClient } from '../lib/aws/clients';
import { lambdaRoot, scheduledRun, withSignal } from './root';

const config = loadProbeConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-probe' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'probe' });
// The probe touches only Auto Scaling, SSM and DynamoDB: its root is built with no other client.
const root = lambdaRoot(config, logger, { asg: asgClient, ssm: ssmClient, ddb: ddbClient });
const plan = scheduledRun(config, root, logger);
const settings = { components: config.QK_PROBE_LEASES.split(','), quotaBytes: config.QK_ETCD_QUOTA_BYTES };
/** Clusters probed at the same time (each is one SSM command plus a few describe calls). */
const PARALLEL = 4;

/**
 * One EMF document per cluster (each carries its own Cluster dimension), published as each
 * probe ends: Powertools' logMetrics middleware flushes once per invocation, which cannot.
 */
export function publishHealth(m: Metrics, o: ProbeOutcome): void {
  const h = o.health;
  m.addDimension('Cluster', o.cluster);
  m.addMetric('FlowFailures', MetricUnit.Count, 0);
  m.addMetric('EtcdHasLeader', MetricUnit.Count, h.hasLeader ? 1 : 0);
  m.addMetric('EtcdHealthyMembers', MetricUnit.Count, h.healthyVoters);
  if (h.reachable) m.addMetric('EtcdLeaderChanges', MetricUnit.Count, h.leaderChanges);
  // Without a leader the margin says nothing more: the no-leader alarm owns that incident.
  if (h.hasLeader) m.addMetric('EtcdQuorumMargin', MetricUnit.Count, h.quorumMargin);
  if (h.dbSizeRatio !== null) m.addMetric('EtcdDbSizeRatio', MetricUnit.NoUnit, h.dbSizeRatio);
  // Days left of the earliest-expiring certificate any member serves; none when none was read.
  if (h.certDaysLeft !== null) m.addMetric('EtcdCertDaysLeft', MetricUnit.NoUnit, h.certDaysLeft);
  m.publishStoredMetrics();
  for (const l of h.leases) {
    if (l.staleSec === null) continue; // unreadable: no value (the etcd alarms cover why)
    const single = m.singleMetric();
    single.addDimension('Cluster', o.cluster);
    single.addDimension('Component', l.component);
    single.addMetric('LeaseStaleSeconds', MetricUnit.Seconds, l.staleSec);
  }
}

function publishFailure(m: Metrics, cluster: string): void {
  m.addDimension('Cluster', cluster);
  m.addMetric('FlowFailures', MetricUnit.Count, 1);
  m.publishStoredMetrics();
}

export interface ProbeRunResult {
  clusters: Array<{ cluster: string; healthy: boolean; problems: string[]; error?: string }>;
  /** Clusters handed to their own invocation of this function (functions/fan-out.ts). */
  handedOff: string[];
}

async function probe(input: unknown, context: Context, opts?: { signal?: AbortSignal }): Promise<ProbeRunResult> {
  const req = parseScheduledRequest(input, 'probe');
  const { here: clusters, handedOff } = await plan(req, context);
  const run = withSignal(probeDeps(root), opts?.signal);
  const out: ProbeRunResult = { clusters: [], handedOff };
  const limit = pLimit(PARALLEL);
  await Promise.all(clusters.map((cluster) => limit(async () => {
    try {
      const o = await probeCluster(run, cluster, settings);
      publishHealth(metrics, o);
      const problems = o.health.problems.map((p) => p.summary);
      // One summary line per cluster: what the probe saw.
      logger[problems.length ? 'warn' : 'info'](`probe ${cluster}: ${problems.length ? problems.join('; ') : 'healthy'}`, { ...o });
      out.clusters.push({ cluster, healthy: problems.length === 0, problems });
    } catch (err) {
      publishFailure(metrics, cluster);
      const message = err instanceof Error ? err.message : String(err);
      logger.error(`probe ${cluster} failed: ${message}`, { cluster, error: err as Error });
      out.clusters.push({ cluster, healthy: false, problems: [], error: message });
    }
  })));
  return out;
}

export const handler = middy(probe, { timeoutEarlyInMillis: 10_000 }).use(injectLambdaContext(logger));
