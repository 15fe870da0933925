/**
 * Alerts: one readable SNS message per incident (de-duplicated per key and window), saying what
 * happened, where, and what an operator should do. The notifier (issue 6) renders them for Slack.
 */
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import type { ClusterLock } from './lock';

export type Severity = 'critical' | 'warning' | 'info';

export interface Alert {
  severity: Severity;
  cluster: string;
  member?: string;
  instanceId?: string;
  flow: string;
  step: string;
  summary: string;
  /** What an operator should do next. */
  action: string;
  /** Same key within the window → one message. */
  dedupeKey: string;
}

export interface Alerter {
  alert(a: Alert): Promise<boolean>;
}

export function snsAlerter(sns: SNSClient, topicArn: string, dedupe: ClusterLock, windowSec = 3600): Alerter {
  return {
    async alert(a) {
      if (!(await dedupe.claimOnce(`alert#${a.dedupeKey}`, windowSec))) return false;
      const where = [a.cluster && `cluster ${a.cluster}`, a.member && `member ${a.member}`, a.instanceId && `instance ${a.instanceId}`].filter(Boolean).join(', ');
      const subject = `[${a.severity.toUpperCase()}] Quorum Keeper ${a.cluster}: ${a.summary}`.slice(0, 99);
      const body = [
        `${a.summary}`,
        '',
        `Where: ${where}`,
        `Flow/step: ${a.flow} / ${a.step}`,
        `Severity: ${a.severity}`,
        `What to do: ${a.action}`,
        '',
        JSON.stringify({ quorumKeeper: 'alert', ...a }),
      ].join('\n');
      await sns.send(new PublishCommand({
        TopicArn: topicArn,
        Subject: subject.replace(/[^\x20-\x7e]/g, ' '),
        Message: body,
        MessageAttributes: { severity: { DataType: 'String', StringValue: a.severity }, cluster: { DataType: 'String', StringValue: a.cluster } },
      }));
      return true;
    },
  };
}
