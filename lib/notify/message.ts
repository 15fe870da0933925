/**
 * What arrives on the alert topic, made readable. Pure: no AWS, no I/O.
 *
 * Two kinds of message reach the topic: CloudWatch alarm state changes (JSON from CloudWatch)
 * and Quorum Keeper's own workflow alerts (plain text whose last line is the alert as JSON,
 * see lib/aws/alerts.ts). Both become one Notice — what happened, where, since when, how bad,
 * what to do next — rendered as Slack Block Kit plus a plain-text fallback.
 */
import { z } from 'zod';

export type NoticeState = 'ALARM' | 'OK' | 'INSUFFICIENT_DATA' | 'EVENT';

export interface Notice {
  source: 'cloudwatch' | 'quorum-keeper';
  /** Alarm name, or flow/step of a workflow alert. */
  name: string;
  state: NoticeState;
  severity: 'critical' | 'warning' | 'info';
  title: string;
  cluster: string | null;
  member: string | null;
  instanceId: string | null;
  /** When the state began (ISO 8601). */
  since: string;
  what: string;
  next: string;
  /** Same key within the de-duplication window → one Slack message. */
  dedupeKey: string;
  /** Why this notice is not worth a message (e.g. a new alarm's first OK), if so. */
  quiet?: string;
  /** The Kubernetes component of a Lease alarm. */
  component?: string;
}

const alarmSchema = z.object({
  AlarmName: z.string().min(1).max(255),
  AlarmDescription: z.string().nullish(),
  NewStateValue: z.enum(['ALARM', 'OK', 'INSUFFICIENT_DATA']),
  OldStateValue: z.string().nullish(),
  NewStateReason: z.string().nullish(),
  StateChangeTime: z.string().nullish(),
  Trigger: z.object({
    MetricName: z.string().nullish(),
    Dimensions: z.array(z.object({ name: z.string().optional(), value: z.string().optional() })).nullish(),
    Metrics: z.array(z.object({ MetricStat: z.object({ Metric: z.object({ Dimensions: z.array(z.object({ name: z.string().optional(), value: z.string().optional() })).nullish() }) }).optional() })).nullish(),
  }).loose().nullish(),
}).loose();

const alertSchema = z.object({
  quorumKeeper: z.literal('alert'),
  severity: z.enum(['critical', 'warning', 'info']),
  cluster: z.string().max(128),
  member: z.string().max(128).optional(),
  instanceId: z.string().max(64).optional(),
  flow: z.string().max(64),
  step: z.string().max(64),
  summary: z.string().max(2000),
  action: z.string().max(2000),
  dedupeKey: z.string().max(512),
}).loose();

export class UnknownMessageError extends Error {
  override readonly name = 'UnknownMessageError';
}

function jsonOrNull(text: string): unknown {
  if (!text.startsWith('{')) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

/** The runbook line of an alarm: its description says "… Next: <step>". */
function splitDescription(desc: string): { what: string; next: string } {
  const i = desc.indexOf(' Next: ');
  return i < 0 ? { what: desc, next: 'See the Quorum Keeper operator guide (README, "What each alert means").' } : { what: desc.slice(0, i), next: desc.slice(i + 7) };
}

function alarmNotice(a: z.infer<typeof alarmSchema>, receivedAt: string): Notice {
  const dims = [...(a.Trigger?.Dimensions ?? []), ...(a.Trigger?.Metrics ?? []).flatMap((m) => m.MetricStat?.Metric.Dimensions ?? [])];
  const cluster = dims.find((d) => d.name === 'Cluster')?.value ?? null;
  const component = dims.find((d) => d.name === 'Component')?.value;
  const { what, next } = splitDescription(a.AlarmDescription ?? a.AlarmName);
  const state = a.NewStateValue;
  const recovered = state === 'OK';
  const since = a.StateChangeTime ? new Date(Date.parse(a.StateChangeTime.replace(/\+0000$/, 'Z'))).toISOString() : receivedAt;
  return {
    source: 'cloudwatch', name: a.AlarmName, state, severity: recovered ? 'info' : state === 'ALARM' ? 'critical' : 'warning',
    title: recovered ? `Recovered: ${a.AlarmName}` : state === 'ALARM' ? `ALARM: ${a.AlarmName}` : `No data: ${a.AlarmName}`,
    cluster, member: null, instanceId: null, since,
    what: recovered ? `Back to normal: ${what}` : `${what}${a.NewStateReason ? ` (${clip(a.NewStateReason, 300)})` : ''}`,
    next: recovered ? 'Nothing to do; check that the cause is understood.' : next,
    dedupeKey: `cw#${a.AlarmName}#${state}`,
    ...(component ? { component } : {}),
    // A new alarm's first evaluation (INSUFFICIENT_DATA → OK) fires its OK action: nothing recovered.
    ...(recovered && a.OldStateValue === 'INSUFFICIENT_DATA' ? { quiet: 'first evaluation of a new alarm' } : {}),
  };
}

/**
 * Turns one SNS message (its Subject and Message) into a Notice. Throws UnknownMessageError for
 * anything else, so it can be sent on as raw text rather than dropped.
 */
export function parseNotice(subject: string | null | undefined, message: string, receivedAt: string): Notice {
  const trimmed = message.trim();
  const alarm = alarmSchema.safeParse(jsonOrNull(trimmed));
  if (alarm.success) return alarmNotice(alarm.data, receivedAt);
  // A workflow alert: readable text whose last line is the alert as JSON.
  const alert = alertSchema.safeParse(jsonOrNull(trimmed.split('\n').pop() ?? ''));
  if (alert.success) {
    const a = alert.data;
    return {
      source: 'quorum-keeper', name: `${a.flow}/${a.step}`, state: 'EVENT', severity: a.severity,
      title: clip(a.summary.split(':')[0] ?? a.summary, 150), cluster: a.cluster, member: a.member ?? null, instanceId: a.instanceId ?? null,
      since: receivedAt, what: a.summary, next: a.action, dedupeKey: `qk#${a.dedupeKey}`,
    };
  }
  throw new UnknownMessageError(`not a CloudWatch alarm nor a Quorum Keeper alert${subject ? ` (subject: ${clip(subject, 100)})` : ''}`);
}

const ICON: Record<Notice['severity'], string> = { critical: ':red_circle:', warning: ':large_orange_circle:', info: ':large_green_circle:' };

/** Slack incoming-webhook payload: Block Kit, with `text` as the notification fallback. */
export function renderSlack(n: Notice): { text: string; blocks: unknown[] } {
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const fields = [
    ['Cluster', n.cluster ?? 'n/a'], ['Severity', n.severity], ['Since', n.since.replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC')],
    ...(n.member ? [['Member', n.member]] : []), ...(n.instanceId ? [['Instance', n.instanceId]] : []),
  ].map(([k, v]) => ({ type: 'mrkdwn', text: `*${k}*\n${esc(v!)}` }));
  return {
    text: plainText(n),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: clip(`${n.state === 'OK' ? '✅' : n.severity === 'critical' ? '🔴' : n.severity === 'warning' ? '🟠' : '🔵'} ${n.title}`, 150), emoji: true } },
      { type: 'section', fields },
      { type: 'section', text: { type: 'mrkdwn', text: `*What happened*\n${esc(clip(n.what, 2900))}` } },
      { type: 'section', text: { type: 'mrkdwn', text: `*Next step*\n${esc(clip(n.next, 2900))}` } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `${ICON[n.severity]} Quorum Keeper · ${n.source === 'cloudwatch' ? 'CloudWatch alarm' : 'workflow'} \`${esc(n.name)}\`` }] },
    ],
  };
}

/** The same notice as plain text (Slack's fallback, logs). */
export function plainText(n: Notice): string {
  const where = [n.cluster && `cluster ${n.cluster}`, n.member && `member ${n.member}`, n.instanceId && `instance ${n.instanceId}`].filter(Boolean).join(', ');
  return `[${n.state === 'OK' ? 'RECOVERED' : n.severity.toUpperCase()}] ${n.title}${where ? ` — ${where}` : ''} (since ${n.since}). ${n.what} Next: ${n.next}`;
}
