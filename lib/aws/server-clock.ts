/**
 * Time from AWS, not from the caller (DESIGN.md). Every AWS response carries a `Date` header
 * (RFC 7231, one-second resolution); a middleware on each SDK client feeds it here, and
 * `wallNow()` is this machine's time corrected by the offset seen. Before any response has been
 * seen, `wallNow()` makes one cheap read to learn it. Durations keep using the local clock
 * (`now()`): a correction must never stretch or cut a running wait.
 *
 * Offsets within the header's resolution (±2 s) count as none; a learnt offset changes only when
 * a later response disagrees by more than that (the local clock was stepped).
 */
import type { Clock } from '../clock';

const RESOLUTION_MS = 2000;
/** After a probe that saw no response: how long wallNow() uses the local clock before asking again. */
const PROBE_RETRY_MS = 60_000;

interface MiddlewareClient {
  middlewareStack: { add: (mw: never, opts: { step: 'deserialize'; name: string; override?: boolean }) => void };
}

export class ServerClock implements Clock {
  private offsetMs: number | null = null;
  private probing: Promise<unknown> | null = null;
  private nextProbeAt = 0;

  /** `probe`: one cheap AWS read made through a client this clock watches. */
  constructor(private readonly base: Clock, private readonly probe: () => Promise<unknown>) {}

  now(): number {
    return this.base.now();
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.base.sleep(ms, signal);
  }

  async wallNow(): Promise<number> {
    // One probe at a time, and after one that taught nothing (no response at all) none again for
    // a minute: a flow asking the time on every step must not pay a failing read each time.
    if (this.offsetMs === null && this.base.now() >= this.nextProbeAt) {
      this.probing ??= this.probe().catch(() => undefined).finally(() => { // an error response has a Date too
        this.probing = null;
        this.nextProbeAt = this.base.now() + PROBE_RETRY_MS;
      });
      await this.probing;
    }
    return this.base.now() + (this.offsetMs ?? 0);
  }

  /** The offset in ms (server minus local) learnt so far, null before any response. */
  get offset(): number | null {
    return this.offsetMs;
  }

  /** A response's `Date` header, received at local time `receivedAt`. */
  observe(dateHeader: string, receivedAt: number): void {
    const server = Date.parse(dateHeader);
    if (Number.isNaN(server)) return;
    // The header is truncated to the second: the server's time at receipt is ~half a second later.
    const raw = server + 500 - receivedAt;
    const seen = Math.abs(raw) <= RESOLUTION_MS ? 0 : raw;
    if (this.offsetMs === null || Math.abs(seen - this.offsetMs) > RESOLUTION_MS) this.offsetMs = seen;
  }

  /** Watches `client`'s responses (and error responses) for their Date header. Idempotent. */
  watch(client: MiddlewareClient): void {
    const read = (response: unknown) => {
      const date = (response as { headers?: Record<string, string | undefined> } | undefined)?.headers?.date;
      if (typeof date === 'string') this.observe(date, this.base.now());
    };
    const mw = (next: (args: unknown) => Promise<{ response: unknown }>) => async (args: unknown) => {
      try {
        const out = await next(args);
        read(out.response);
        return out;
      } catch (err) {
        read((err as { $response?: unknown } | null)?.$response);
        throw err;
      }
    };
    client.middlewareStack.add(mw as never, { step: 'deserialize', name: 'quorumKeeperServerClock', override: true });
  }
}
