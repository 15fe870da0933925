/** Time as a dependency, so flows can be driven by tests and bounded by the Lambda deadline. */
export interface Clock {
  /** This machine's time: durations, deadlines, polls. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Wall-clock time as AWS keeps it (epoch ms), for every timestamp another machine compares:
   * lock expiry, backup keys and ages, first-seen and held-since times. Absent: `now()` is it.
   * A caller whose clock is off (a laptop 3 h fast) must not steal locks or date backups ahead.
   */
  wallNow?(): Promise<number>;
}

/** Wall-clock (server) time from `clock`: its `wallNow` when it has one, else its `now`. */
export function wallNow(clock: Clock): Promise<number> {
  return clock.wallNow ? clock.wallNow() : Promise.resolve(clock.now());
}

export const systemClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new Error('aborted'));
        return;
      }
      const t = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(t);
        reject(new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
};

export class TimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

/**
 * Polls `probe` until it returns a value, for conditions no SDK waiter covers (SSM agent
 * online, etcd caught up). `onWait` runs between polls (e.g. a lifecycle heartbeat).
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  opts: { clock: Clock; timeoutMs: number; intervalMs: number; signal?: AbortSignal; onWait?: (elapsedMs: number) => Promise<void> },
): Promise<T> {
  const start = opts.clock.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    const elapsed = opts.clock.now() - start;
    if (elapsed + opts.intervalMs > opts.timeoutMs) throw new TimeoutError(`timed out after ${Math.round(elapsed / 1000)} s waiting for ${what}`);
    if (opts.onWait) await opts.onWait(elapsed);
    await opts.clock.sleep(opts.intervalMs, opts.signal);
  }
}
