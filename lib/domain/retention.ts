/**
 * Backup retention: which snapshots to keep. Pure (no AWS, no clock): the caller passes `now`.
 *
 * Defaults: every backup for 24 h, the newest good one per UTC day for 7 days, the newest good
 * one per ISO week (Monday-based, UTC) for 8 weeks. The newest good backup is never deleted,
 * whatever its age. Backups that are not good (failed verification) are kept only inside the
 * keep-everything window, for inspection.
 */

export interface BackupRef {
  key: string;
  /** When the snapshot was taken (epoch ms). */
  takenAt: number;
  /** Verified by a trial restore. */
  good: boolean;
}

export interface RetentionPolicy {
  keepAllHours: number;
  dailyDays: number;
  weeklyWeeks: number;
}

export const DEFAULT_RETENTION: RetentionPolicy = { keepAllHours: 24, dailyDays: 7, weeklyWeeks: 8 };

export type KeepReason = 'recent' | 'daily' | 'weekly' | 'newest-good';

export interface RetentionDecision {
  keep: Map<string, KeepReason>;
  delete: string[];
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const dayBucket = (t: number) => Math.floor(t / DAY);
/** ISO-week bucket: days since the epoch (a Thursday) shifted so weeks start on Monday. */
const weekBucket = (t: number) => Math.floor((dayBucket(t) + 3) / 7);

export function validatePolicy(p: RetentionPolicy): RetentionPolicy {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isInteger(v) || v < 0 || v > 10_000) throw new RangeError(`retention ${k} must be an integer from 0 to 10000, got ${String(v)}`);
  }
  return p;
}

export function decideRetention(backups: readonly BackupRef[], policy: RetentionPolicy, now: number): RetentionDecision {
  validatePolicy(policy);
  const keep = new Map<string, KeepReason>();
  const mark = (b: BackupRef, why: KeepReason) => {
    if (!keep.has(b.key)) keep.set(b.key, why);
  };
  const good = backups.filter((b) => b.good).sort((a, b) => b.takenAt - a.takenAt || (a.key < b.key ? 1 : -1));
  const newest = good[0];
  if (newest) mark(newest, 'newest-good');
  for (const b of backups) if (now - b.takenAt < policy.keepAllHours * HOUR) mark(b, 'recent');
  const seenDays = new Set<number>();
  const seenWeeks = new Set<number>();
  for (const b of good) {
    const age = now - b.takenAt;
    const d = dayBucket(b.takenAt);
    if (age < policy.dailyDays * DAY && !seenDays.has(d)) {
      seenDays.add(d);
      mark(b, 'daily');
    }
    const w = weekBucket(b.takenAt);
    if (age < policy.weeklyWeeks * 7 * DAY && !seenWeeks.has(w)) {
      seenWeeks.add(w);
      mark(b, 'weekly');
    }
  }
  return { keep, delete: backups.filter((b) => !keep.has(b.key)).map((b) => b.key) };
}
