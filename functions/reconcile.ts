/**
 * Lambda entry for the reconciler (EventBridge schedule, default every 5 min; also invoked on
 * demand with `{"clusters": ["prod"], "dryRun": true}`). Thin: validate configuration and the
 * request, reconcile each cluster (a few at a time), log one summary line per cluster and
 * publish its drift. A cluster whose run failed does not stop the others.
 */
import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { S3Client } from '@aws-sdk/client-s3';
import { clientOptions } from '../lib/aws/clients';
import { dynamoReconcileMemory } from '../lib/aws/reconcile-memory';
import { systemClock } from '../lib/clock';
import { loadReconcileConfig } from '../lib/config';
import { parseScheduledRequest } from '../lib/events/scheduled';
import { backupSettings } from '../lib/flows/backup';
import { listClusters } from '../lib/flows/cluster-masters';
import { type ReconcileDeps, reconcileCluster } from '../lib/flows/reconcile';
import { lambdaFlowDeps } from './flow-deps';

const config = loadReconcileConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-reconcile' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'reconcile' });
const { clients, deps: flow } = lambdaFlowDeps(config, logger);
const backup = backupSettings(config);
const deps: ReconcileDeps = {
  ...flow,
  memory: dynamoReconcileMemory(clients.ddb, config.QK_STATE_TABLE, systemClock),
  backup: { s3: new S3Client({ ...clientOptions(config), forcePathStyle: Boolean(config.QK_AWS_ENDPOINT) }), settings: backup },
};
const settings = {
  pendingGraceSec: config.QK_RECONCILE_PENDING_GRACE_SEC,
  repairGraceSec: config.QK_RECONCILE_REPAIR_GRACE_SEC,
  strayGraceSec: config.QK_RECONCILE_STRAY_GRACE_SEC,
  backupStaleAfterSec: backup.staleAfterSec,
};
/** Clusters reconciled at the same time (a re-drive can take minutes; others should not wait). */
const PARALLEL = 4;

export interface ReconcileRunResult {
  clusters: Array<{ cluster: string; drift: number | null; summary: string; failed: number; error?: string }>;
}

async function reconcile(input: unknown, _context: unknown, opts?: { signal?: AbortSignal }): Promise<ReconcileRunResult> {
  const req = parseScheduledRequest(input, 'reconcile');
  const clusters = req.clusters ?? (await listClusters(clients.asg, flow.tags));
  const run: ReconcileDeps = opts?.signal ? { ...deps, signal: opts.signal } : deps;
  const out: ReconcileRunResult = { clusters: [] };
  const queue = [...clusters];
  await Promise.all(Array.from({ length: Math.min(PARALLEL, queue.length) }, async () => {
    for (let cluster = queue.shift(); cluster !== undefined; cluster = queue.shift()) {
      // One EMF document per value (clusters run concurrently; a single metric flushes at once).
      const put = (name: string, value: number) => {
        const m = metrics.singleMetric();
        m.addDimension('Cluster', cluster);
        m.addMetric(name, MetricUnit.Count, value);
      };
      try {
        const o = await reconcileCluster(run, cluster, settings, { dryRun: req.dryRun ?? false });
        const failed = o.steps.filter((s) => s.result === 'failed').length;
        logger[failed ? 'error' : o.drift ? 'warn' : 'info'](o.summary, { cluster, drift: o.drift, dryRun: o.dryRun, steps: o.steps.map((s) => ({ kind: s.action.kind, result: s.result, detail: s.detail })) });
        put('ReconcileDrift', o.drift);
        put('FlowFailures', failed ? 1 : 0);
        out.clusters.push({ cluster, drift: o.drift, summary: o.summary, failed });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        logger.error(`reconcile ${cluster}: FAILED to read or act: ${message}`, { cluster, error: err as Error });
        put('FlowFailures', 1);
        out.clusters.push({ cluster, drift: null, summary: `reconcile ${cluster}: failed: ${message}`, failed: 1, error: message });
      }
    }
  }));
  if (clusters.length === 0) logger.warn('no cluster found: no Auto Scaling group carries both Quorum Keeper tags', { tags: flow.tags });
  return out;
}

export const handler = middy(reconcile, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger));
