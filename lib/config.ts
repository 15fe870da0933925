/**
 * Configuration from environment variables, validated once at cold start. A bad value stops
 * the function with one message that names every offending variable.
 */
import { z } from 'zod';

const schema = z.object({
  AWS_REGION: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1'),
  /** Only for the local sandbox / tests: an explicit endpoint for every AWS client. */
  QK_AWS_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  QK_TAG_CLUSTER: z.string().min(1).max(128).default('quorum-keeper/cluster'),
  QK_TAG_MEMBER: z.string().min(1).max(128).default('quorum-keeper/etcd-member'),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid Quorum Keeper configuration: ${problems}`);
  }
  return parsed.data;
}
