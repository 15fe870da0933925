/** AWS SDK v3 clients built from validated configuration (the only place endpoints are set). */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { Config } from '../config';

export function clientOptions(cfg: Pick<Config, 'AWS_REGION' | 'QK_AWS_ENDPOINT'>) {
  return {
    region: cfg.AWS_REGION,
    ...(cfg.QK_AWS_ENDPOINT ? { endpoint: cfg.QK_AWS_ENDPOINT } : {}),
    maxAttempts: 5,
  };
}

export function autoScalingClient(cfg: Config): AutoScalingClient {
  return new AutoScalingClient(clientOptions(cfg));
}
