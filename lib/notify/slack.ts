/**
 * Posting to a Slack incoming webhook, with retries: 5xx, 429 (honouring Retry-After, capped)
 * and network errors are retried with exponential backoff and jitter; any other 4xx is a
 * configuration error (revoked webhook, bad payload) and is not. The caller decides what a
 * final failure means (the notifier throws, so the event ends in its dead-letter queue).
 */
import type { Clock } from '../clock';

export interface SlackPostOptions {
  clock: Clock;
  attempts?: number;
  baseDelayMs?: number;
  timeoutMs?: number;
}

export class SlackError extends Error {
  override readonly name = 'SlackError';
  constructor(message: string, readonly retryable: boolean, readonly attempts: number) {
    super(message);
  }
}

export async function postToSlack(url: string, payload: unknown, opts: SlackPostOptions): Promise<{ attempts: number }> {
  const attempts = opts.attempts ?? 4;
  const base = opts.baseDelayMs ?? 500;
  let last = '';
  for (let i = 1; i <= attempts; i++) {
    let waitMs = base * 2 ** (i - 1) * (0.5 + Math.random() / 2);
    try {
      const res = await fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload), signal: AbortSignal.timeout(opts.timeoutMs ?? 5000),
      });
      const body = (await res.text()).slice(0, 200);
      if (res.ok) return { attempts: i };
      last = `HTTP ${res.status}${body ? ` ${body}` : ''}`;
      if (res.status !== 429 && res.status < 500) throw new SlackError(`Slack refused the message: ${last}`, false, i);
      const after = Number(res.headers.get('retry-after'));
      if (res.status === 429 && Number.isFinite(after) && after > 0) waitMs = Math.min(after * 1000, 10_000);
    } catch (err) {
      if (err instanceof SlackError) throw err;
      last = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    }
    if (i < attempts) await opts.clock.sleep(waitMs);
  }
  throw new SlackError(`Slack did not take the message after ${attempts} attempts (last: ${last})`, true, attempts);
}
