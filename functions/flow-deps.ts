/** What the flow Lambdas (lifecycle, reconcile) share: clients, lock, alerter and step logging. */
import type { Logger } from '@aws-lambda-powertools/logger';
import { snsAlerter } from '../lib/aws/alerts';
import { type AwsClients, awsClients } from '../lib/aws/clients';
import { ClusterLock } from '../lib/aws/lock';
import { systemClock } from '../lib/clock';
import type { FlowConfig } from '../lib/config';
import { AWS_TIMINGS, type FlowDeps } from '../lib/flows/deps';
import { hostScripts } from './host-scripts';

export function lambdaFlowDeps(config: FlowConfig, logger: Logger): { clients: AwsClients; deps: FlowDeps } {
  const clients = awsClients(config);
  // Lock TTL: a whole replacement fits in the 900 s Lambda timeout; holders extend as they go.
  const lock = new ClusterLock(clients.ddb, systemClock, { table: config.QK_STATE_TABLE });
  const deps: FlowDeps = {
    ...clients,
    lock,
    alerter: snsAlerter(clients.sns, config.QK_ALERT_TOPIC_ARN, lock),
    scripts: hostScripts,
    clock: systemClock,
    tags: { cluster: config.QK_TAG_CLUSTER, member: config.QK_TAG_MEMBER },
    timings: { ...AWS_TIMINGS, minDelaySec: config.QK_POLL_MIN_DELAY_SEC, maxDelaySec: config.QK_POLL_MAX_DELAY_SEC },
    progress: (e) => {
      if (e.status === 'start') return;
      logger[e.status === 'fail' ? 'error' : 'info'](`step ${e.step} ${e.status}`, { step: e.step, status: e.status, detail: e.detail, ms: e.ms });
    },
  };
  return { clients, deps };
}
