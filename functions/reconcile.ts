/**
 * Lambda entry for the reconciler (EventBridge schedule, default every 5 min; also invoked on
 * demand with `{"clusters": ["prod"], "dryRun": true}`). Thin: validate configuration and the
 * request; a scheduled run hands each cluster to its own invocation (functions/fan-out.ts);
 * reconcile the clusters named (a few at a time), log one summary line per cluster and publish
 * its drift. A cluster whose run failed does not stop the others.
 */
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import pLimit from 'p-limit';
import { reconcileDeps } from '../lib/compose';
import { loadReconcileConfig, recoverySettings } from '../lib/config';
import { parseScheduledRequest } from '../lib/events/scheduled';
import { backupSettings } from '../lib/flows/backup';
import { reconcileCluster } from '../lib/flows/reconcile';
import { ALL_CLIENTS } from '../lib/aws/clients';
import { lambdaRoot, scheduledRun, withSignal } from './root';

const config = loadReconcileConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-reconcile' });
const metrics = new Metrics({ namespace: 'QuorumKeeper', serviceName: 'reconcile' });
// The reconciler drives every flow: every client.
const root = lambdaRoot(config, logger, ALL_CLIENTS);
const plan = scheduledRun(config, root, logger);
const backup = backupSettings(config);
const settings = {
  pendingGraceSec: config.QK_RECONCILE_PENDING_GRACE_SEC,
  repairGraceSec: config.QK_RECONCILE_REPAIR_GRACE_SEC,
  strayGraceSec: config.QK_RECONCILE_STRAY_GRACE_SEC,
  backupStaleAfterSec: backup.staleAfterSec,
};
const recovery = {
  settings: (cluster: string) => recoverySettings(config, cluster),
  get journal() { return root.restoreJournal; },
};
/** Clusters reconciled at the same time (a re-drive can take minutes; others should not wait). */
const PARALLEL = 4;

export interface ReconcileRunResult {
  clusters: Array<{ cluster: string; drift: number | null; summary: string; failed: number; error?: string }>;
  /** Clusters handed to their own invocation of this function (functions/fan-out.ts). */
  handedOff: string[];
}

async function reconcile(input: unknown, context: Context, opts?: { signal?: AbortSignal }): Promise<ReconcileRunResult> {
  const req = parseScheduledRequest(input, 'reconcile');
  const { here: clusters, handedOff } = await plan(req, context);
  const run = withSignal({ ...reconcileDeps(root, backup), recovery }, opts?.signal);
  const out: ReconcileRunResult = { clusters: [], handedOff };
  const limit = pLimit(PARALLEL);
  await Promise.all(clusters.map((cluster) => limit(async () => {
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
  })));
  return out;
}

export const handler = middy(reconcile, { timeoutEarlyInMillis: 30_000 }).use(injectLambdaContext(logger));
