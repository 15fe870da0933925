/**
 * Lambda entry for the notifier, subscribed to the alert topic. Thin: validate configuration
 * and the SNS event, then `notify` each message (parse, de-duplicate, post to Slack with
 * retries). The webhook URL is a SecureString in Parameter Store (never an environment
 * value), read with decryption and cached for 5 minutes. A message Slack would not take makes
 * the invocation fail: Lambda retries it, then puts the event in the dead-letter queue. The
 * topic's e-mail/SMS subscribers get every message directly, whatever Slack does.
 */
import middy from '@middy/core';
import { Logger } from '@aws-lambda-powertools/logger';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { loadNotifierConfig } from '../lib/config';
import { parseSnsEvent } from '../lib/events/sns';
import { type NotifyDeps, notify } from '../lib/flows/notify';
import { asgClient, ddbClient, ssmClient } from '../lib/aws/clients';
import { lambdaRoot } from './root';

const config = loadNotifierConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-notifier' });
// De-duplication in the state table, the webhook parameter in SSM; Auto Scaling only for AWS's time.
const root = lambdaRoot(config, logger, { ddb: ddbClient, ssm: ssmClient, asg: asgClient });
// Powertools Parameters: the SecureString decrypted and cached for 5 minutes.
const parameters = new SSMProvider({ awsSdkV3Client: root.clients.ssm });

async function webhookUrl(): Promise<string | null> {
  if (!config.QK_SLACK_WEBHOOK_PARAMETER) return null;
  const url = (await parameters.get(config.QK_SLACK_WEBHOOK_PARAMETER, { decrypt: true, maxAge: 300 })) ?? '';
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new Error(`parameter ${config.QK_SLACK_WEBHOOK_PARAMETER} does not hold a webhook URL`);
  return url;
}

const deps: NotifyDeps = {
  clock: root.clock,
  dedupe: { claim: (k, w) => root.lock.claimOnce(k, w), release: (k) => root.lock.releaseOnce(k) },
  webhookUrl,
  leaseHolder: async (cluster, component) => (await root.probeMemory.get(cluster))?.leases?.[component] ?? null,
};

async function handle(input: unknown): Promise<{ results: Array<{ messageId: string; result: string }> }> {
  const records = parseSnsEvent(input);
  const results: Array<{ messageId: string; result: string }> = [];
  let failure: Error | null = null;
  for (const r of records) {
    try {
      const out = await notify(deps, r, { dedupeWindowSec: config.QK_NOTIFY_DEDUPE_SEC, attempts: config.QK_SLACK_ATTEMPTS, baseDelayMs: config.QK_SLACK_RETRY_BASE_MS });
      logger.info(`${out.result}: ${out.notice.title}`, { messageId: r.messageId, result: out.result, dedupeKey: out.notice.dedupeKey, cluster: out.notice.cluster });
      results.push({ messageId: r.messageId, result: out.result });
    } catch (err) {
      logger.error(`could not deliver message ${r.messageId} to Slack`, { messageId: r.messageId, error: err as Error });
      failure ??= err instanceof Error ? err : new Error(String(err));
    }
  }
  // Fail the invocation so Lambda retries it and finally dead-letters it (delivered messages
  // are de-duplicated on the retry).
  if (failure) throw failure;
  return { results };
}

export const handler = middy(handle).use(injectLambdaContext(logger));
