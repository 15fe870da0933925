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

export interface Datapoint {
  namespace: string;
  metric: string;
  dims: Record<string, string>;
  value: number;
}

/** Metric datapoints from the EMF records a function printed (CloudWatch's log pipeline). */
export function datapointsFromEmf(lines: readonly string[]): Datapoint[] {
  const out: Datapoint[] = [];
  for (const line of lines) {
    if (!line.includes('"_aws"')) continue;
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const aws = rec._aws as { CloudWatchMetrics?: Array<{ Namespace: string; Dimensions: string[][]; Metrics: Array<{ Name: string }> }> } | undefined;
    for (const d of aws?.CloudWatchMetrics ?? []) {
      for (const set of d.Dimensions) {
        const dims = Object.fromEntries(set.map((k) => [k, String(rec[k])]));
        for (const m of d.Metrics) {
          const v = rec[m.Name];
          for (const value of Array.isArray(v) ? v : [v]) if (typeof value === 'number') out.push({ namespace: d.Namespace, metric: m.Name, dims, value });
        }
      }
    }
  }
  return out;
}

type State = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/**
 * Evaluates alarms the way CloudWatch does, one period per `tick` (the sandbox's probe runs
 * stand for one-minute periods): the period's statistic over the matching datapoints, the
 * last EvaluationPeriods periods, DatapointsToAlarm of them breaching → ALARM, missing data
 * treated as the alarm says. Alarms start in INSUFFICIENT_DATA, as new alarms do. Metric-math
 * alarms are not evaluated here.
 */
export class AlarmEvaluator {
  readonly states = new Map<string, State>();
  private readonly history = new Map<string, Array<number | null>>();

  constructor(private readonly alarms: readonly AlarmProperties[], private readonly publish: (message: string) => Promise<void>) {
    for (const a of alarms) this.states.set(a.AlarmName, 'INSUFFICIENT_DATA');
  }

  async tick(points: readonly Datapoint[]): Promise<void> {
    for (const a of this.alarms) {
      if (!a.MetricName) continue;
      const want = Object.fromEntries((a.Dimensions ?? []).map((d) => [d.Name, d.Value]));
      const values = points.filter((p) => p.namespace === a.Namespace && p.metric === a.MetricName
        && Object.keys(p.dims).length === Object.keys(want).length && Object.entries(want).every(([k, v]) => p.dims[k] === v)).map((p) => p.value);
      const stat = values.length === 0 ? null
        : a.Statistic === 'Minimum' ? Math.min(...values) : a.Statistic === 'Maximum' ? Math.max(...values)
          : a.Statistic === 'Sum' ? values.reduce((x, y) => x + y, 0) : values.reduce((x, y) => x + y, 0) / values.length;
      const h = [...(this.history.get(a.AlarmName) ?? []), stat].slice(-a.EvaluationPeriods);
      this.history.set(a.AlarmName, h);
      const breaches = (v: number) => ({
        LessThanThreshold: v < a.Threshold, LessThanOrEqualToThreshold: v <= a.Threshold,
        GreaterThanThreshold: v > a.Threshold, GreaterThanOrEqualToThreshold: v >= a.Threshold,
      })[a.ComparisonOperator];
      const judged = h.map((v) => (v === null ? (a.TreatMissingData === 'breaching' ? true : a.TreatMissingData === 'notBreaching' ? false : null) : breaches(v)));
      const known = judged.filter((j): j is boolean => j !== null);
      const next: State = known.filter(Boolean).length >= (a.DatapointsToAlarm ?? a.EvaluationPeriods) ? 'ALARM' : known.length ? 'OK' : 'INSUFFICIENT_DATA';
      const prev = this.states.get(a.AlarmName)!;
      if (next === prev) continue;
      this.states.set(a.AlarmName, next);
      const shown = h.map((v) => (v === null ? 'missing' : v.toFixed(1))).join(', ');
      const reason = next === 'ALARM'
        ? `Threshold Crossed: ${known.filter(Boolean).length} out of the last ${h.length} datapoints [${shown}] crossed the threshold (${a.Threshold}).`
        : `Threshold Crossed: the last ${h.length} datapoints [${shown}] did not cross the threshold (${a.Threshold}).`;
      await this.publish(alarmMessage(a, next, prev, reason));
    }
  }
}
