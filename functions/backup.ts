/**
 * Lambda entry for scheduled etcd backups (EventBridge schedule, default every 30 min). Thin:
 * validate configuration and the event, back up each cluster (one at a time: a snapshot
 * streams the whole DB from a follower), publish metrics. A failed cluster does not stop the
 * others; its alert has already been sent by the flow.
 */
import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import { snsAlerter } from '../lib/aws/alerts';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { clientOptions } from '../lib/aws/clients';
import { ClusterLock } from '../lib/aws/lock';
import { systemClock } from '../lib/clock';
import { loadBackupConfig } from '../lib/config';
import { parseBackupRequest } from '../lib/events/scheduled';
import { type BackupDeps, type BackupOutcome, backupCluster, backupSettings } from '../lib/flows/backup';
import { listClusters } from '../lib/flows/cluster-masters';
import { hostScripts } from './host-scripts';

const config = loadBackupConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-backup' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'backup' });
// Only the clients the backup uses: the EC2 client alone costs ~0.6 s of cold start.
const clients = {
  asg: new AutoScalingClient(clientOptions(config)), ssm: new SSMClient(clientOptions(config)), ddb: new DynamoDBClient(clientOptions(config)), sns: new SNSClient(clientOptions(config)),
};
const s3 = new S3Client({ ...clientOptions(config), forcePathStyle: Boolean(config.QK_AWS_ENDPOINT) });
const lock = new ClusterLock(clients.ddb, systemClock, { table: config.QK_STATE_TABLE });
const settings = backupSettings(config);
const tags = { cluster: config.QK_TAG_CLUSTER, member: config.QK_TAG_MEMBER };
const deps: BackupDeps = {
  asg: clients.asg, ssm: clients.ssm, s3,
  alerter: snsAlerter(clients.sns, config.QK_ALERT_TOPIC_ARN, lock),
  scripts: hostScripts,
  clock: systemClock,
  tags,
  timings: { minDelaySec: config.QK_POLL_MIN_DELAY_SEC, maxDelaySec: config.QK_POLL_MAX_DELAY_SEC },
  progress: (e) => {
    if (e.status === 'start') return;
    logger[e.status === 'fail' ? 'error' : 'info'](`step ${e.step} ${e.status}`, { step: e.step, status: e.status, detail: e.detail });
  },
};

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
  const clusters = req.clusters ?? (await listClusters(clients.asg, tags));
  const run: BackupDeps = opts?.signal ? { ...deps, signal: opts.signal } : deps;
  const out: BackupRunResult = { clusters: [] };
  for (const cluster of clusters) {
    const o = await backupCluster(run, cluster, settings);
    publish(o);
    logger[o.result === 'failed' ? 'error' : 'info'](`backup of ${cluster}: ${o.result}`, { ...o });
    out.clusters.push({
      cluster, result: o.result, newestGoodAgeSec: o.newestGoodAgeSec, stale: o.stale,
      ...(o.key ? { key: o.key } : {}), ...(o.revision !== undefined ? { revision: o.revision } : {}), ...(o.failure ? { error: o.failure.message } : {}),
    });
  }
  if (clusters.length === 0) logger.warn('no cluster found: no Auto Scaling group carries both Quorum Keeper tags', { tags });
  return out;
}

export const handler = middy(backup, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger));
