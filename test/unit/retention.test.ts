import fc from 'fast-check';
import { type BackupRef, decideRetention, DEFAULT_RETENTION } from '../../lib/domain/retention';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0); // a Wednesday

const arbBackups = fc.uniqueArray(
  fc.record({ ageMin: fc.integer({ min: 0, max: 120 * 24 * 60 }), good: fc.boolean() }),
  { maxLength: 300, selector: (r) => r.ageMin },
).map((rs) => rs.map((r): BackupRef => ({ key: `prod/${String(NOW - r.ageMin * 60_000).padStart(15, '0')}.db.zst`, takenAt: NOW - r.ageMin * 60_000, good: r.good })));

describe('retention policy', () => {
  it('never deletes the newest good backup', () => {
    fc.assert(fc.property(arbBackups, (bs) => {
      const newest = bs.filter((b) => b.good).sort((a, b) => b.takenAt - a.takenAt)[0];
      const d = decideRetention(bs, DEFAULT_RETENTION, NOW);
      return newest === undefined || d.keep.has(newest.key);
    }));
  });

  it('keeps everything younger than 24 h, and partitions the input', () => {
    fc.assert(fc.property(arbBackups, (bs) => {
      const d = decideRetention(bs, DEFAULT_RETENTION, NOW);
      const recentKept = bs.filter((b) => NOW - b.takenAt < DAY).every((b) => d.keep.has(b.key));
      return recentKept && d.keep.size + d.delete.length === bs.length && d.delete.every((k) => !d.keep.has(k));
    }));
  });

  it('keeps a good backup for every day of the last 7 and every week of the last 8 that had one', () => {
    fc.assert(fc.property(arbBackups, (bs) => {
      const d = decideRetention(bs, DEFAULT_RETENTION, NOW);
      const kept = bs.filter((b) => d.keep.has(b.key) && b.good);
      const day = (t: number) => Math.floor(t / DAY);
      const week = (t: number) => Math.floor((day(t) + 3) / 7);
      const good = bs.filter((b) => b.good);
      const daysOk = good.filter((b) => NOW - b.takenAt < 7 * DAY).every((b) => kept.some((k) => day(k.takenAt) === day(b.takenAt)));
      const weeksOk = good.filter((b) => NOW - b.takenAt < 56 * DAY).every((b) => kept.some((k) => week(k.takenAt) === week(b.takenAt)));
      return daysOk && weeksOk;
    }));
  });

  it('is stable: pruning what it keeps, later, deletes nothing more than a fresh decision would', () => {
    fc.assert(fc.property(arbBackups, fc.integer({ min: 0, max: 6 * 60 }), (bs, laterMin) => {
      const first = decideRetention(bs, DEFAULT_RETENTION, NOW);
      const survivors = bs.filter((b) => first.keep.has(b.key));
      const later = NOW + laterMin * 60_000;
      const again = decideRetention(survivors, DEFAULT_RETENTION, later);
      const direct = decideRetention(bs, DEFAULT_RETENTION, later);
      return again.delete.every((k) => direct.delete.includes(k));
    }));
  });

  it('keeps exactly the expected set after 90 days of half-hourly backups', () => {
    const bs: BackupRef[] = [];
    for (let t = NOW - 90 * DAY; t <= NOW; t += 30 * 60_000) bs.push({ key: `prod/${t}`, takenAt: t, good: true });
    const d = decideRetention(bs, DEFAULT_RETENTION, NOW);
    // Independent expectation: the last 24 h (48 backups, the one exactly 24 h old excluded),
    // the newest of each earlier UTC day within 7 days, the newest of each ISO week within 8 weeks.
    const expected = new Set<number>();
    for (const b of bs) if (NOW - b.takenAt < DAY) expected.add(b.takenAt);
    const newestIn = (from: number, to: number) => Math.max(...bs.filter((b) => b.takenAt >= from && b.takenAt < to).map((b) => b.takenAt));
    const startOfDay = (t: number) => Math.floor(t / DAY) * DAY;
    for (let day = startOfDay(NOW); day > NOW - 7 * DAY - DAY; day -= DAY) {
      const candidates = bs.filter((b) => b.takenAt >= day && b.takenAt < day + DAY && NOW - b.takenAt < 7 * DAY);
      if (candidates.length) expected.add(newestIn(day, day + DAY));
    }
    const monday = startOfDay(NOW) - ((new Date(NOW).getUTCDay() + 6) % 7) * DAY;
    for (let w = monday; w > NOW - 56 * DAY - 7 * DAY; w -= 7 * DAY) {
      const candidates = bs.filter((b) => b.takenAt >= w && b.takenAt < w + 7 * DAY && NOW - b.takenAt < 56 * DAY);
      if (candidates.length) expected.add(newestIn(w, w + 7 * DAY));
    }
    expect([...d.keep.keys()].map((k) => Number(k.slice(5))).sort()).toEqual([...expected].sort());
    expect(d.keep.size).toBe(expected.size);
    expect(d.keep.size).toBeLessThan(48 + 7 + 9 + 1);
  });

  it('keeps failed (unverified) backups only while they are recent, and never counts them as the newest good one', () => {
    const bad = { key: 'prod/bad', takenAt: NOW - 2 * DAY, good: false };
    const okOld = { key: 'prod/old', takenAt: NOW - 30 * DAY, good: true };
    const d = decideRetention([bad, okOld], DEFAULT_RETENTION, NOW);
    expect(d.delete).toEqual(['prod/bad']);
    expect(d.keep.get('prod/old')).toBe('newest-good');
  });

  it('refuses a nonsensical policy', () => {
    expect(() => decideRetention([], { keepAllHours: -1, dailyDays: 7, weeklyWeeks: 8 }, NOW)).toThrow(/keepAllHours/);
  });
});
