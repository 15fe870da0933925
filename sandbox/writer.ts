/**
 * Continuous writer: checks the promise that automation never costs acknowledged writes.
 * While a scenario runs it writes monotonically numbered keys through the normal client path
 * (the etcd v3 HTTP gateway of whichever member answers) at a steady rate and records each
 * write as acknowledged, failed (certainly not applied) or unknown (may or may not be).
 * `verify()` reads everything back with a linearizable range read and reports
 * acknowledged-but-missing (must be 0) and the longest window without any acknowledgement.
 * Over mutual TLS when the members' URLs are https (the harness's client certificate).
 */
import { etcdFetch } from './etcd-http';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

type Outcome = 'ack' | 'failed' | 'unknown';

interface WriteRecord {
  seq: number;
  startedAt: number;
  endedAt: number;
  outcome: Outcome;
  /** etcd revision the acknowledged put created (from the response header). */
  revision?: number;
}

export interface WriterReport {
  attempted: number;
  acknowledged: number;
  failed: number;
  unknown: number;
  /** Acknowledged by etcd but absent afterwards: a lost write. Must be 0. */
  acknowledgedButMissing: number;
  missingSeqs: number[];
  /** Unknown writes that turned out to be applied. */
  unknownPresent: number;
  /** Longest time (ms) in which no write was acknowledged. */
  longestGapMs: number;
  /**
   * With `upToRevision` (a restore): acknowledged writes newer than the snapshot that the
   * restore discarded, as expected. They are not counted as lost.
   */
  discardedAfterRevision: number;
  durationMs: number;
}

export interface WriterOptions {
  prefix: string;
  ratePerSec?: number;
  /** Give up on one write after this long (ms); an unanswered write is "unknown". */
  writeDeadlineMs?: number;
  maxInFlight?: number;
}

export class AckWriter {
  private readonly records: WriteRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private inFlight = new Set<Promise<void>>();
  private seq = 0;
  private preferred = 0;
  private startedAt = 0;
  private stoppedAt = 0;
  private readonly rate: number;
  private readonly deadline: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly endpoints: () => string[],
    private readonly opts: WriterOptions,
  ) {
    this.rate = opts.ratePerSec ?? 50;
    this.deadline = opts.writeDeadlineMs ?? 2000;
    this.maxInFlight = opts.maxInFlight ?? 200;
  }

  key(seq: number): string {
    return `${this.opts.prefix}${String(seq).padStart(8, '0')}`;
  }

  start(): this {
    this.startedAt = Date.now();
    this.timer = setInterval(() => {
      if (this.inFlight.size >= this.maxInFlight) return;
      const p = this.writeOne(this.seq++).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }, Math.max(1, Math.round(1000 / this.rate)));
    return this;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await Promise.all([...this.inFlight]);
    this.stoppedAt = Date.now();
  }

  private async writeOne(seq: number): Promise<void> {
    const startedAt = Date.now();
    const until = startedAt + this.deadline;
    let ambiguous = false;
    let outcome: Outcome | null = null;
    let revision: number | undefined;
    for (let attempt = 0; Date.now() < until && outcome === null; attempt++) {
      const eps = this.endpoints();
      if (eps.length === 0) break;
      const ep = eps[(this.preferred + attempt) % eps.length]!;
      try {
        const res = await etcdFetch(`${ep}/v3/kv/put`, {
          method: 'POST',
          body: JSON.stringify({ key: b64(this.key(seq)), value: b64(String(seq)) }),
          signal: AbortSignal.timeout(Math.max(50, until - Date.now())),
        });
        const body = (await res.json().catch(() => ({}))) as { header?: { revision?: string }; error?: string; message?: string };
        if (res.ok && body.header) {
          outcome = 'ack';
          revision = Number(body.header.revision ?? NaN);
          this.preferred = (this.preferred + attempt) % eps.length;
        } else {
          const msg = `${body.error ?? ''} ${body.message ?? ''}`;
          // "no leader" / "not capable" are refused before proposal; anything else may have been proposed.
          if (!/no leader|not capable|too many requests/.test(msg)) ambiguous = true;
          await new Promise((r) => setTimeout(r, 50));
        }
      } catch (err) {
        const code = (err as { cause?: { code?: string } }).cause?.code;
        if (code !== 'ECONNREFUSED') ambiguous = true; // timed out or reset after sending
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    this.records.push({ seq, startedAt, endedAt: Date.now(), outcome: outcome ?? (ambiguous ? 'unknown' : 'failed'), ...(revision !== undefined && Number.isFinite(revision) ? { revision } : {}) });
  }

  /**
   * Linearizable read of the whole prefix from any answering member. After a restore pass
   * `upToRevision` (the snapshot's revision): every write acknowledged at or below it must be
   * present; later ones are reported as discarded by the restore, not as lost.
   */
  async verify(readEndpoints: string[] = this.endpoints(), opts: { upToRevision?: number } = {}): Promise<WriterReport> {
    if (this.timer) await this.stop();
    const prefix = this.opts.prefix;
    const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
    let present: Set<number> | null = null;
    let lastErr = '';
    for (let round = 0; round < 20 && present === null; round++) {
      for (const ep of readEndpoints) {
        try {
          const res = await etcdFetch(`${ep}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64(prefix), range_end: b64(end), keys_only: true }), signal: AbortSignal.timeout(5000) });
          const body = (await res.json()) as { kvs?: Array<{ key: string }>; header?: unknown; error?: string };
          if (!res.ok || !body.header) throw new Error(body.error ?? `HTTP ${res.status}`);
          present = new Set((body.kvs ?? []).map((kv) => Number(unb64(kv.key).slice(prefix.length))));
          break;
        } catch (err) {
          lastErr = err instanceof Error ? err.message : String(err);
        }
      }
      if (present === null) await new Promise((r) => setTimeout(r, 500));
    }
    if (present === null) throw new Error(`writer: could not read back ${prefix}: ${lastErr}`);
    const acked = this.records.filter((r) => r.outcome === 'ack');
    const cut = opts.upToRevision;
    const afterCut = (r: WriteRecord) => cut !== undefined && (r.revision === undefined || r.revision > cut);
    const missingSeqs = acked.filter((r) => !present.has(r.seq) && !afterCut(r)).map((r) => r.seq).sort((a, b) => a - b);
    const discardedAfterRevision = acked.filter((r) => !present.has(r.seq) && afterCut(r)).length;
    const ackTimes = acked.map((r) => r.endedAt).sort((a, b) => a - b);
    let longestGapMs = 0;
    let prev = this.startedAt;
    for (const t of [...ackTimes, this.stoppedAt || Date.now()]) {
      longestGapMs = Math.max(longestGapMs, t - prev);
      prev = t;
    }
    return {
      attempted: this.records.length,
      acknowledged: acked.length,
      failed: this.records.filter((r) => r.outcome === 'failed').length,
      unknown: this.records.filter((r) => r.outcome === 'unknown').length,
      acknowledgedButMissing: missingSeqs.length,
      missingSeqs: missingSeqs.slice(0, 20),
      unknownPresent: this.records.filter((r) => r.outcome === 'unknown' && present.has(r.seq)).length,
      longestGapMs,
      discardedAfterRevision,
      durationMs: (this.stoppedAt || Date.now()) - this.startedAt,
    };
  }
}

export function formatReport(r: WriterReport): string {
  return `writes: ${r.acknowledged} acknowledged, ${r.failed} failed, ${r.unknown} unknown (${r.unknownPresent} of them applied); `
    + `lost (acknowledged but missing): ${r.acknowledgedButMissing}; `
    + (r.discardedAfterRevision ? `discarded by the restore (newer than the snapshot): ${r.discardedAfterRevision}; ` : '')
    + `longest unavailability: ${(r.longestGapMs / 1000).toFixed(2)} s over ${(r.durationMs / 1000).toFixed(1)} s`;
}
