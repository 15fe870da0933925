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
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { clientOptions } from '../lib/aws/clients';
import { dynamoProbeMemory } from '../lib/aws/probe-memory';
import { ClusterLock } from '../lib/aws/lock';
import { systemClock } from '../lib/clock';
import { loadNotifierConfig } from '../lib/config';
import { parseSnsEvent } from '../lib/events/sns';
import { type NotifyDeps, notify } from '../lib/flows/notify';

const config = loadNotifierConfig();
const logger = new Logger({ serviceName: 'quorum-keeper-notifier' });
const ssm = new SSMClient(clientOptions(config));
const ddb = new DynamoDBClient(clientOptions(config));
const lock = new ClusterLock(ddb, systemClock, { table: config.QK_STATE_TABLE });
const probeMemory = dynamoProbeMemory(ddb, config.QK_STATE_TABLE, systemClock);

let cached: { url: string; until: number } | null = null;
async function webhookUrl(): Promise<string | null> {
  if (!config.QK_SLACK_WEBHOOK_PARAMETER) return null;
  if (cached && cached.until > Date.now()) return cached.url;
  const p = await ssm.send(new GetParameterCommand({ Name: config.QK_SLACK_WEBHOOK_PARAMETER, WithDecryption: true }));
  const url = p.Parameter?.Value ?? '';
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new Error(`parameter ${config.QK_SLACK_WEBHOOK_PARAMETER} does not hold a webhook URL`);
  cached = { url, until: Date.now() + 300_000 };
  return url;
}

const deps: NotifyDeps = {
  clock: systemClock,
  dedupe: { claim: (k, w) => lock.claimOnce(k, w), release: (k) => lock.releaseOnce(k) },
  webhookUrl,
  leaseHolder: async (cluster, component) => (await probeMemory.get(cluster))?.leases?.[component] ?? null,
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
