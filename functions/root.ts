/** Every Lambda's composition root: validated configuration → the clients, deps and step logging its flows share. */
import { setMaxListeners } from 'node:events';
import type { LambdaClient } from '@aws-sdk/client-lambda';
import type { Logger } from '@aws-lambda-powertools/logger';
import { awsClients, type ClientMakers, lambdaClient } from '../lib/aws/clients';
import { compose, type Root } from '../lib/compose';
import type { Config } from '../lib/config';
import { listClusters } from '../lib/flows/cluster-masters';
import { AWS_TIMINGS, withPoll } from '../lib/flows/deps';
import type { ScheduledRequest } from '../lib/events/scheduled';
import { planRun, type RunPlan } from './fan-out';
import { hostScripts } from './host-scripts';

type LambdaConfig = Config & {
  QK_STATE_TABLE: string; QK_ALERT_TOPIC_ARN?: string; QK_POLL_MIN_DELAY_SEC?: number; QK_POLL_MAX_DELAY_SEC?: number; QK_DEPARTURE_WAIT_SEC?: number;
  QK_BACKUP_BUCKET?: string | undefined; QK_BACKUP_PREFIX?: string; QK_BACKUP_KMS_KEY_ID?: string | undefined;
};

/**
 * `makers`: the clients this function's flows use, and only those: its bundle then carries only
 * their SDK packages (see docs/benchmarks.md, cold init). Its handler test runs its flows through
 * this root, so a client left out is found there.
 */
export function lambdaRoot(config: LambdaConfig, logger: Logger, makers: Partial<ClientMakers>): Root {
  return compose({
    clients: awsClients({ region: config.AWS_REGION, endpoint: config.QK_AWS_ENDPOINT }, makers),
    scripts: hostScripts,
    tags: { cluster: config.QK_TAG_CLUSTER, member: config.QK_TAG_MEMBER, ...(config.QK_CLUSTERS.length ? { served: config.QK_CLUSTERS } : {}) },
    timings: {
      ...withPoll(AWS_TIMINGS, config.QK_POLL_MIN_DELAY_SEC ?? AWS_TIMINGS.minDelaySec, config.QK_POLL_MAX_DELAY_SEC ?? AWS_TIMINGS.maxDelaySec),
      ...(config.QK_DEPARTURE_WAIT_SEC !== undefined ? { departureWaitSec: config.QK_DEPARTURE_WAIT_SEC } : {}),
    },
    stateTable: config.QK_STATE_TABLE,
    ...(config.QK_BACKUP_BUCKET ? { backupStore: { bucket: config.QK_BACKUP_BUCKET, prefix: config.QK_BACKUP_PREFIX ?? 'etcd-backups', ...(config.QK_BACKUP_KMS_KEY_ID ? { kmsKeyId: config.QK_BACKUP_KMS_KEY_ID } : {}) } } : {}),
    alertTopicArn: config.QK_ALERT_TOPIC_ARN,
    // One structured log line per step, for operators.
    progress: (e) => {
      if (e.status === 'start') return;
      logger[e.status === 'fail' ? 'error' : 'info'](`step ${e.step} ${e.status}`, { step: e.step, status: e.status, detail: e.detail, ms: e.ms });
    },
  });
}

/**
 * The flow's deps for this invocation: middy's timeout signal stops it before the Lambda deadline.
 * Four clusters at a time, each with its waiters and requests listening on it, pass Node's
 * default of 10 listeners (a MaxListenersExceededWarning in the log, though each is removed when
 * its wait ends): the limit is raised for this one signal.
 */
export function withSignal<D extends object>(deps: D, signal: AbortSignal | undefined): D {
  if (!signal) return deps;
  setMaxListeners(100, signal);
  return { ...deps, signal };
}

/**
 * A scheduled function's plan for one invocation (functions/fan-out.ts): what it runs itself and
 * what it hands off, with its own name from the Lambda context and one Lambda client for the
 * container, built on first hand-off. A scheduled run that finds no cluster says so.
 */
export function scheduledRun(config: LambdaConfig, root: Root, logger: Logger): (req: ScheduledRequest, context: { functionName: string }) => Promise<RunPlan> {
  let lambda: LambdaClient | undefined;
  const client = () => (lambda ??= lambdaClient({ region: config.AWS_REGION, endpoint: config.QK_AWS_ENDPOINT }));
  const clusters = async () => {
    const found = await listClusters(root.clients.asg, root.tags);
    if (found.length === 0) logger.warn('no cluster found: no Auto Scaling group carries both Quorum Keeper tags', { tags: root.tags });
    return found;
  };
  return (req, context) => planRun(req, { lambda: client, functionName: context.functionName, logger, listClusters: clusters });
}
