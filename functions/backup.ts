/**
 * Lambda entry for scheduled etcd backups (EventBridge schedule, default every 30 min). Thin:
 * validate configuration and the event, back up each cluster (a few at a time: each snapshot
 * streams from one of its own cluster's followers straight to S3, so clusters do not compete;
 * one after another, 50 clusters of several SSM round trips each took minutes under the AWS
 * latency profile), publish metrics. A failed or slow cluster does not stop the others; its
 * alert has already been sent by the flow.
 */
import middy from '@middy/core';
import pLimit from 'p-limit';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { backupDeps } from '../lib/compose';
import { loadBackupConfig } from '../lib/config';
import { parseBackupRequest } from '../lib/events/scheduled';
import { type BackupOutcome, backupCluster, backupSettings } from '../lib/flows/backup';
import { listClusters } from '../lib/flows/cluster-masters';
import { lambdaRoot, withSignal } from './root';

const config = loadBackupConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-backup' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'backup' });
// The backup touches only Auto Scaling, SSM, S3, DynamoDB and SNS: the root builds no other client.
const root = lambdaRoot(config, logger);
const settings = backupSettings(config);
/** Clusters backed up at the same time (as the probe and the reconciler). */
const PARALLEL = 4;

/**
 * One EMF document per cluster (each carries its own Cluster dimension): published as each
 * cluster finishes, which Powertools' logMetrics middleware (one flush per invocation) cannot do.
 */
function publish(o: BackupOutcome): void {
  metrics.addDimension('Cluster', o.cluster);
  metrics.addMetric('BackupFailures', MetricUnit.Count, o.result === 'failed' ? 1 : 0);
  metrics.addMetric('FlowFailures', MetricUnit.Count, o.result === 'failed' ? 1 : 0);
  metrics.addMetric('BackupDurationSeconds', MetricUnit.Seconds, o.ms.total / 1000);
  if (o.result === 'uploaded') {
    metrics.addMetric('BackupSizeBytes', MetricUnit.Bytes, o.size ?? 0);
    metrics.addMetric('BackupRevision', MetricUnit.Count, o.revision ?? 0);
  }
  // No value when the listing failed: the alarm treats missing data as breaching.
  if (o.newestGoodAgeSec !== null) metrics.addMetric('BackupAgeSeconds', MetricUnit.Seconds, o.newestGoodAgeSec);
  metrics.publishStoredMetrics();
}

export interface BackupRunResult {
  clusters: Array<Pick<BackupOutcome, 'cluster' | 'result' | 'key' | 'revision' | 'newestGoodAgeSec' | 'stale'> & { error?: string }>;
}

async function backup(input: unknown, _context: unknown, opts?: { signal?: AbortSignal }): Promise<BackupRunResult> {
  const req = parseBackupRequest(input);
  const clusters = req.clusters ?? (await listClusters(root.clients.asg, root.tags));
  const run = withSignal(backupDeps(root), opts?.signal);
  const limit = pLimit(PARALLEL);
  // In the order asked, whatever order they finish in.
  const out: BackupRunResult = { clusters: await Promise.all(clusters.map((cluster) => limit(async () => {
    const o = await backupCluster(run, cluster, settings);
    publish(o);
    logger[o.result === 'failed' ? 'error' : 'info'](`backup of ${cluster}: ${o.result}`, { ...o });
    return {
      cluster, result: o.result, newestGoodAgeSec: o.newestGoodAgeSec, stale: o.stale,
      ...(o.key ? { key: o.key } : {}), ...(o.revision !== undefined ? { revision: o.revision } : {}), ...(o.failure ? { error: o.failure.message } : {}),
    };
  }))) };
  if (clusters.length === 0) logger.warn('no cluster found: no Auto Scaling group carries both Quorum Keeper tags', { tags: root.tags });
  return out;
}

export const handler = middy(backup, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger));
