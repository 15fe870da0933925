/**
 * What starts a backup run: the EventBridge schedule (a "Scheduled Event", or the constant
 * input the schedule is configured with), the reconciler or an operator. Optional `clusters`
 * limits the run; without it every cluster found by its tags is backed up.
 */
import { z } from 'zod';
import { patterns } from '../validate';

const schema = z.object({
  clusters: z.array(z.string().regex(patterns.clusterName, 'must be a cluster name (lowercase letters, digits, dashes)')).min(1).max(100).optional(),
}).loose();

export type BackupRequest = { clusters?: string[] };

export class BackupEventError extends Error {
  override readonly name = 'BackupEventError';
}

export function parseBackupRequest(input: unknown): BackupRequest {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new BackupEventError(`invalid backup request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ')}`);
  }
  return parsed.data.clusters ? { clusters: parsed.data.clusters } : {};
}
