/**
 * Configuration from environment variables, validated once at cold start. A bad value stops
 * the function with one message that names every offending variable.
 */
import { z } from 'zod';

const seconds = (dflt: number) => z.coerce.number().int().min(1).max(3600).default(dflt);

const base = z.object({
  AWS_REGION: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1'),
  /** Only for the local sandbox / tests: an explicit endpoint for every AWS client. */
  QK_AWS_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  QK_TAG_CLUSTER: z.string().min(1).max(128).default('quorum-keeper/cluster'),
  QK_TAG_MEMBER: z.string().min(1).max(128).default('quorum-keeper/etcd-member'),
});

const flows = base.extend({
  /** DynamoDB table for the per-cluster lock and alert de-duplication (key `pk`, TTL `ttl`). */
  QK_STATE_TABLE: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'must be a DynamoDB table name'),
  /** SNS topic for alerts. */
  QK_ALERT_TOPIC_ARN: z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/, 'must be an SNS topic ARN'),
  /** Polling floor/ceiling for SDK waiters and polls (AWS: 2/15; the sandbox uses 1/1). */
  QK_POLL_MIN_DELAY_SEC: seconds(2),
  QK_POLL_MAX_DELAY_SEC: seconds(15),
});

export type Config = z.infer<typeof base>;
export type FlowConfig = z.infer<typeof flows>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function parse<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid Quorum Keeper configuration: ${problems}`);
  }
  return parsed.data;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return parse(base, env);
}

export function loadFlowConfig(env: NodeJS.ProcessEnv = process.env): FlowConfig {
  return parse(flows, env);
}
