import { parseNotice, plainText, renderSlack, UnknownMessageError } from '../../lib/notify/message';

const AT = '2026-11-25T12:00:00.000Z';
const alarm = (over: Record<string, unknown> = {}) => JSON.stringify({
  AlarmName: 'quorum-keeper-prod-prod-no-leader',
  AlarmDescription: 'etcd of prod has no leader: the Kubernetes API cannot write. Next: quorum-keeper status --cluster prod.',
  NewStateValue: 'ALARM', OldStateValue: 'OK', NewStateReason: 'Threshold Crossed: 1 datapoint [0.0] was less than the threshold (1.0).',
  StateChangeTime: '2026-11-25T11:59:10.123+0000',
  Trigger: { MetricName: 'EtcdHasLeader', Dimensions: [{ value: 'prod', name: 'Cluster' }, { value: 'probe', name: 'service' }] },
  ...over,
});

describe('parseNotice', () => {
  it('a CloudWatch alarm: cluster from its dimensions, since = state change time, next step from the description', () => {
    const n = parseNotice('ALARM: "quorum-keeper-prod-prod-no-leader"', alarm(), AT);
    expect(n).toMatchObject({
      source: 'cloudwatch', state: 'ALARM', severity: 'critical', cluster: 'prod', since: '2026-11-25T11:59:10.123Z',
      next: 'quorum-keeper status --cluster prod.', dedupeKey: 'cw#quorum-keeper-prod-prod-no-leader#ALARM',
    });
    expect(n.what).toBe('etcd of prod has no leader: the Kubernetes API cannot write. (Threshold Crossed: 1 datapoint [0.0] was less than the threshold (1.0).)');
  });

  it('a metric-math alarm finds the cluster in its metrics; a recovery is info; a new alarm\'s first OK is quiet', () => {
    const math = alarm({ Trigger: { Metrics: [{ Id: 'e', Expression: 'a+b' }, { Id: 'a', MetricStat: { Metric: { Dimensions: [{ name: 'Cluster', value: 'stage' }] } } }] } });
    expect(parseNotice(null, math, AT).cluster).toBe('stage');
    expect(parseNotice(null, alarm({ NewStateValue: 'OK', OldStateValue: 'ALARM' }), AT)).toMatchObject({ severity: 'info', title: 'Recovered: quorum-keeper-prod-prod-no-leader' });
    expect(parseNotice(null, alarm({ NewStateValue: 'OK', OldStateValue: 'INSUFFICIENT_DATA' }), AT).quiet).toMatch(/first evaluation/);
  });

  it('a workflow alert: readable text whose last line is JSON', () => {
    const body = ['volume held', '', 'Where: cluster prod', JSON.stringify({ quorumKeeper: 'alert', severity: 'warning', cluster: 'prod', member: 'etcd-b', flow: 'replacement', step: 'volume', summary: 'volume vol-1 held: waiting', action: 'Wait.', dedupeKey: 'prod#v' })].join('\n');
    expect(parseNotice('x', body, AT)).toMatchObject({ source: 'quorum-keeper', name: 'replacement/volume', member: 'etcd-b', severity: 'warning', since: AT, dedupeKey: 'qk#prod#v' });
  });

  it('anything else is refused as unknown (the caller passes it on as text)', () => {
    for (const m of ['hello', '{"AlarmName": 5}', '{not json', JSON.stringify({ quorumKeeper: 'alert' })]) {
      expect(() => parseNotice('subject', m, AT)).toThrow(UnknownMessageError);
    }
  });
});

describe('renderSlack', () => {
  it('Block Kit with a plain-text fallback; Slack control characters are escaped', () => {
    const n = parseNotice(null, alarm({ AlarmDescription: 'a <b> & c. Next: run <this>.' }), AT);
    const r = renderSlack(n);
    expect(r.text).toBe(plainText(n));
    const json = JSON.stringify(r.blocks);
    expect(json).toContain('a &lt;b&gt; &amp; c.');
    expect(json).toContain('run &lt;this&gt;.');
    expect(r.blocks.map((b) => (b as { type: string }).type)).toEqual(['header', 'section', 'section', 'section', 'context']);
  });
});
