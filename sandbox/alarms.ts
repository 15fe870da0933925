/**
 * CloudWatch alarms in the sandbox. moto stores alarms but never evaluates them, and EMF
 * metrics reach CloudWatch only through Lambda's log pipeline, which the sandbox does not
 * have. So the sandbox loads the alarm definitions exactly as they are deployed (it runs
 * deploy/alarms.js with the serverless.yml parameter defaults), evaluates them over the EMF
 * records the functions print, and on a state change produces the message CloudWatch
 * publishes to the alarm's SNS topic.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface AlarmProperties {
  AlarmName: string;
  AlarmDescription: string;
  Namespace?: string;
  MetricName?: string;
  Dimensions?: Array<{ Name: string; Value: string }>;
  Statistic?: 'Minimum' | 'Maximum' | 'Sum' | 'Average';
  Period?: number;
  EvaluationPeriods: number;
  DatapointsToAlarm?: number;
  Threshold: number;
  ComparisonOperator: 'LessThanThreshold' | 'LessThanOrEqualToThreshold' | 'GreaterThanThreshold' | 'GreaterThanOrEqualToThreshold';
  TreatMissingData: 'breaching' | 'notBreaching' | 'ignore' | 'missing';
  Metrics?: unknown[];
}

const ROOT = join(__dirname, '..');

/** `params.default` of serverless.yml (flat `key: value` lines). */
export function serverlessParams(): Record<string, string> {
  const text = readFileSync(join(ROOT, 'serverless.yml'), 'utf8');
  const block = /\nparams:\n {2}default:\n((?: {4}.*\n|\s*\n)+)/.exec(text)?.[1] ?? '';
  const out: Record<string, string> = {};
  for (const line of block.split('\n')) {
    const m = /^ {4}([A-Za-z0-9]+): (.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!.replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** The alarms deploy/alarms.js generates for these clusters, by logical ID. */
export async function deployedAlarms(clusters: string[], overrides: Record<string, string> = {}): Promise<Record<string, AlarmProperties>> {
  const params: Record<string, string> = { ...serverlessParams(), clusters: clusters.join(','), ...overrides };
  const vars: Record<string, string> = { 'self:service': 'quorum-keeper', 'sls:stage': 'sandbox' };
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const generate = require(join(ROOT, 'deploy', 'alarms.js')) as (ctx: { resolveVariable: (v: string) => Promise<string> }) => Promise<{ Resources: Record<string, { Properties: AlarmProperties }> }>;
  const { Resources } = await generate({
    resolveVariable: (v) => {
      const value = v.startsWith('param:') ? params[v.slice(6)] : vars[v];
      if (value === undefined) return Promise.reject(new Error(`unknown variable ${v}`));
      return Promise.resolve(value);
    },
  });
  return Object.fromEntries(Object.entries(Resources).map(([id, r]) => [id, r.Properties]));
}

/** The JSON CloudWatch publishes to an alarm action's SNS topic on a state change. */
export function alarmMessage(a: AlarmProperties, state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', oldState: string, reason: string, at = new Date()): string {
  return JSON.stringify({
    AlarmName: a.AlarmName, AlarmDescription: a.AlarmDescription, AWSAccountId: '123456789012', NewStateValue: state, NewStateReason: reason,
    StateChangeTime: at.toISOString().replace('Z', '+0000'), Region: 'US East (N. Virginia)', AlarmArn: `arn:aws:cloudwatch:us-east-1:123456789012:alarm:${a.AlarmName}`,
    OldStateValue: oldState, OKActions: [], AlarmActions: [], InsufficientDataActions: [],
    Trigger: {
      MetricName: a.MetricName, Namespace: a.Namespace, StatisticType: 'Statistic', Statistic: a.Statistic?.toUpperCase(), Unit: null,
      Dimensions: (a.Dimensions ?? []).map((d) => ({ value: d.Value, name: d.Name })), Period: a.Period, EvaluationPeriods: a.EvaluationPeriods,
      ComparisonOperator: a.ComparisonOperator, Threshold: a.Threshold, TreatMissingData: a.TreatMissingData, EvaluateLowSampleCountPercentile: '',
    },
  });
}
