/**
 * Lambda entry for scheduled etcd backups (EventBridge schedule, default every 30 min). Thin:
 * validate configuration and the event; a scheduled run hands each cluster to its own
 * invocation (functions/fan-out.ts); back up the clusters named (a few at a time: each snapshot
 * streams from one of its own cluster's followers straight to S3, so clusters do not compete),
 * publish metrics. A failed or slow cluster does not stop the others; its
 * alert has already been sent by the flow.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import pLimit from 'p-limit';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { backupDeps } from '../lib/compose';
import { loadBackupConfig } from '../lib/config';
import { parseBackupRequest } from '../lib/events/scheduled';
import { type BackupOutcome, backupCluster, backupSettings } from '../lib/flows/backup';
import { asgClient, ddbClient, s3Client, snsClient, ssmClient } from '../lib/aws/clients';
import { lambdaRoot, scheduledRun, withSignal } from './root';

const config = loadBackupConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-backup' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'backup' });
// The backup touches only Auto Scaling, SSM, S3, DynamoDB and SNS: the root builds no other client.
// Backups: the slots (Auto Scaling), the hosts (SSM), the bucket, the state table and the alert topic.
const root = lambdaRoot(config, logger, { asg: asgClient, ssm: ssmClient, s3: s3Client, ddb: ddbClient, sns: snsClient });
const plan = scheduledRun(config, root, logger);
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
  /** Clusters handed to their own invocation of this function (functions/fan-out.ts). */
  handedOff: string[];
}

async function backup(input: unknown, context: Context, opts?: { signal?: AbortSignal }): Promise<BackupRunResult> {
  const req = parseBackupRequest(input);
  const { here: clusters, handedOff } = await plan(req, context);
  const run = withSignal(backupDeps(root), opts?.signal);
  const limit = pLimit(PARALLEL);
  // In the order asked, whatever order they finish in.
  const out: BackupRunResult = { handedOff, clusters: await Promise.all(clusters.map((cluster) => limit(async () => {
    const o = await backupCluster(run, cluster, settings);
    publish(o);
    logger[o.result === 'failed' ? 'error' : 'info'](`backup of ${cluster}: ${o.result}`, { ...o });
    return {
      cluster, result: o.result, newestGoodAgeSec: o.newestGoodAgeSec, stale: o.stale,
      ...(o.key ? { key: o.key } : {}), ...(o.revision !== undefined ? { revision: o.revision } : {}), ...(o.failure ? { error: o.failure.message } : {}),
    };
  }))) };
  return out;
}

export const handler = middy(backup, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger));
