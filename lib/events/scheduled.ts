/**
 * What starts a scheduled run (backup, probe, reconcile): the EventBridge schedule (a "Scheduled Event",
 * or the constant input the schedule is configured with), the reconciler or an operator.
 * Optional `clusters` limits the run; without it every cluster found by its tags is covered.
 */
import { z } from 'zod';
import { patterns } from '../validate';

const schema = z.object({
  clusters: z.array(z.string().regex(patterns.clusterName, 'must be a cluster name (lowercase letters, digits, dashes)')).min(1).max(100).optional(),
  /** Reconciler only: plan and report, change nothing. */
  dryRun: z.boolean().optional(),
}).loose();

export type ScheduledRequest = { clusters?: string[]; dryRun?: boolean };

export class ScheduledEventError extends Error {
  override readonly name = 'ScheduledEventError';
}

export function parseScheduledRequest(input: unknown, what: 'backup' | 'probe' | 'reconcile'): ScheduledRequest {
  const parsed = schema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new ScheduledEventError(`invalid ${what} request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(event)'}: ${i.message}`).join('; ')}`);
  }
  return { ...(parsed.data.clusters ? { clusters: parsed.data.clusters } : {}), ...(parsed.data.dryRun !== undefined ? { dryRun: parsed.data.dryRun } : {}) };
}

export const parseBackupRequest = (input: unknown): ScheduledRequest => parseScheduledRequest(input, 'backup');
