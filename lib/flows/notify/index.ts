/**
 * One message from the alert topic to Slack: parse it (CloudWatch alarm or Quorum Keeper
 * alert; anything else is passed on as raw text rather than dropped), de-duplicate it (the
 * same alarm in the same state within the window → one message; DynamoDB conditional write),
 * post it with retries. A message that could not be delivered gives its claim back and
 * throws: Lambda retries the event and finally puts it in the dead-letter queue.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../clock';
import { type Notice, parseNotice, plainText, renderSlack, UnknownMessageError } from '../../notify/message';
import { postToSlack } from '../../notify/slack';

export interface NotifyDeps {
  clock: Clock;
  dedupe: { claim(key: string, windowSec: number): Promise<boolean>; release(key: string): Promise<void> };
  /** The webhook URL (from Parameter Store); null when Slack is not configured. */
  webhookUrl: () => Promise<string | null>;
  /** The last holder of a Lease as the probe last saw it (CloudWatch alarms cannot carry it). */
  leaseHolder?: (cluster: string, component: string) => Promise<{ holder: string | null; renewTime: string | null } | null>;
}

export interface NotifySettings {
  dedupeWindowSec: number;
  attempts?: number;
  baseDelayMs?: number;
}

export interface SnsMessage {
  subject: string | null;
  message: string;
  /** When SNS received it (ISO 8601). */
  timestamp: string;
}

export type NotifyResult = { result: 'posted'; attempts: number; notice: Notice } | { result: 'duplicate' | 'no-webhook' | 'ignored'; notice: Notice };

function rawNotice(m: SnsMessage, why: string): Notice {
  const digest = createHash('sha256').update(m.message).digest('hex').slice(0, 32);
  return {
    source: 'quorum-keeper', name: 'unrecognised', state: 'EVENT', severity: 'warning', title: m.subject?.slice(0, 150) || 'Message on the Quorum Keeper alert topic',
    cluster: null, member: null, instanceId: null, since: m.timestamp, what: m.message.slice(0, 2800), next: `Read it in full in the topic's e-mail subscription (${why}).`,
    dedupeKey: `raw#${digest}`,
  };
}

export async function notify(deps: NotifyDeps, m: SnsMessage, settings: NotifySettings): Promise<NotifyResult> {
  let notice: Notice;
  try {
    notice = parseNotice(m.subject, m.message, m.timestamp);
  } catch (err) {
    if (!(err instanceof UnknownMessageError)) throw err;
    notice = rawNotice(m, err.message);
  }
  if (notice.quiet) return { result: 'ignored', notice };
  if (notice.component && notice.cluster && notice.state === 'ALARM' && deps.leaseHolder) {
    const last = await deps.leaseHolder(notice.cluster, notice.component).catch(() => null);
    if (last) notice = { ...notice, what: `${notice.what} Last holder: ${last.holder ?? 'nobody'}${last.renewTime ? `, last renewed ${last.renewTime}` : ''}.` };
  }
  const url = await deps.webhookUrl();
  if (!url) return { result: 'no-webhook', notice };
  const key = `notify#${notice.dedupeKey}`;
  if (settings.dedupeWindowSec > 0 && !(await deps.dedupe.claim(key, settings.dedupeWindowSec))) return { result: 'duplicate', notice };
  try {
    const { attempts } = await postToSlack(url, renderSlack(notice), {
      clock: deps.clock, ...(settings.attempts ? { attempts: settings.attempts } : {}), ...(settings.baseDelayMs ? { baseDelayMs: settings.baseDelayMs } : {}),
    });
    return { result: 'posted', attempts, notice };
  } catch (err) {
    if (settings.dedupeWindowSec > 0) await deps.dedupe.release(key).catch(() => undefined);
    throw Object.assign(err instanceof Error ? err : new Error(String(err)), { notice: plainText(notice) });
  }
}
