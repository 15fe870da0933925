/**
 * The notifier Lambda entry against moto (DynamoDB de-duplication, the webhook URL as an SSM
 * SecureString, an SQS dead-letter queue) and a local HTTP server standing in for Slack.
 * Alarm messages are built from the alarm definitions as deployed (deploy/alarms.js).
 */
import { CreateQueueCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { snsAlerter } from '../../lib/aws/alerts';
import { type AlarmProperties, alarmMessage, deployedAlarms } from '../../sandbox/alarms';
import { type Control, destroyControl, provisionControl, sandboxLambdaEnv } from '../../sandbox/control';
import { invokeAsync, snsEvent } from '../../sandbox/lambda';
import { Sandbox } from '../../sandbox/sandbox';
import { SlackStandIn } from '../../sandbox/slack';

jest.setTimeout(120_000);

type Handler = (event: unknown) => Promise<{ results: Array<{ result: string }> }>;
type Block = { type: string; text?: { text: string }; fields?: Array<{ text: string }> };

describe('notifier', () => {
  let sandbox: Sandbox;
  let ctl: Control;
  let slack: SlackStandIn;
  let sqs: SQSClient;
  let dlq: string;
  let handler: Handler;
  let alarms: Record<string, AlarmProperties>;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    slack = await SlackStandIn.start();
    alarms = await deployedAlarms(['prod']);
  });
  afterAll(async () => {
    await slack?.stop();
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    slack.reset();
    ctl = await provisionControl(sandbox);
    const cfg = sandbox.clientConfig();
    const ssm = new SSMClient(cfg);
    await ssm.send(new PutParameterCommand({ Name: '/quorum-keeper/slack-webhook', Type: 'SecureString', Value: slack.url }));
    ssm.destroy();
    sqs = new SQSClient(cfg);
    dlq = (await sqs.send(new CreateQueueCommand({ QueueName: 'notifier-dlq' }))).QueueUrl!;
    Object.assign(process.env, {
      ...sandboxLambdaEnv(sandbox, ctl), POWERTOOLS_LOG_LEVEL: 'SILENT',
      QK_SLACK_WEBHOOK_PARAMETER: '/quorum-keeper/slack-webhook', QK_NOTIFY_DEDUPE_SEC: '900', QK_SLACK_RETRY_BASE_MS: '20',
    });
    handler ??= (await import('../../functions/notifier')).handler as unknown as Handler;
  });
  afterEach(() => {
    sqs.destroy();
    destroyControl(ctl);
  });

  const deliver = (message: string, subject: string | null = null) => invokeAsync(handler, snsEvent(ctl.topicArn, message, subject), { dlq: { sqs, queueUrl: dlq } });
  const noLeader = () => alarms.ProdNoLeaderAlarm!;
  const texts = (blocks: unknown[] | undefined) => (blocks as Block[] | undefined ?? []).flatMap((b) => [b.text?.text ?? '', ...(b.fields ?? []).map((f) => f.text)]).join('\n');

  it('an alarm becomes one readable Slack message (cluster, severity, since, what, next step); its recovery another', async () => {
    const at = new Date('2026-11-25T12:01:10.000Z');
    await deliver(alarmMessage(noLeader(), 'ALARM', 'OK', 'Threshold Crossed: 1 out of the last 1 datapoints [0.0] was less than the threshold (1.0).', at));
    expect(slack.delivered()).toHaveLength(1);
    const msg = slack.delivered()[0]!.payload;
    expect(msg.text).toMatch(/^\[CRITICAL\] ALARM: quorum-keeper-sandbox-prod-no-leader — cluster prod \(since 2026-11-25T12:01:10.000Z\)\. etcd of prod has no leader/);
    const body = texts(msg.blocks);
    expect(body).toContain('*Cluster*\nprod');
    expect(body).toContain('*Since*\n2026-11-25 12:01:10 UTC');
    expect(body).toMatch(/\*Next step\*\nquorum-keeper status --cluster prod; bring failed masters back, or restore from the latest backup\./);

    await deliver(alarmMessage(noLeader(), 'OK', 'ALARM', 'Threshold Crossed: 1 out of the last 1 datapoints [1.0] was not less than the threshold (1.0).'));
    expect(slack.delivered()).toHaveLength(2);
    expect(slack.delivered()[1]!.payload.text).toMatch(/^\[RECOVERED\] Recovered: quorum-keeper-sandbox-prod-no-leader — cluster prod/);
  });

  it('20 identical alarm notifications in a burst → one Slack post', async () => {
    const message = alarmMessage(alarms.ProdKubeSchedulerLeaseAlarm!, 'ALARM', 'OK', 'Threshold Crossed: 2 datapoints [120.0, 180.0] were greater than the threshold (30.0).');
    const runs = await Promise.all(Array.from({ length: 20 }, () => deliver(message)));
    expect(runs.every((r) => !r.deadLettered)).toBe(true);
    expect(slack.posts).toHaveLength(1);
    expect(slack.delivered()[0]!.payload.text).toMatch(/kube-scheduler leader election stalled on prod/);
  });

  it('Slack answering 500 then 200 → delivered once, after a retry', async () => {
    slack.answer(500);
    const r = await deliver(alarmMessage(alarms.ProdQuorumMarginAlarm!, 'ALARM', 'OK', 'Threshold Crossed'));
    expect(r).toMatchObject({ attempts: 1, deadLettered: false });
    expect(slack.posts.map((p) => p.status)).toEqual([500, 200]);
    expect(slack.delivered()).toHaveLength(1);
  });

  it('Slack down throughout → the event lands in the DLQ with the alert intact; nothing is thrown away', async () => {
    slack.fallback = 503;
    const message = alarmMessage(noLeader(), 'ALARM', 'OK', 'Threshold Crossed');
    const r = await deliver(message);
    expect(r).toMatchObject({ attempts: 3, deadLettered: true });
    expect(slack.posts).toHaveLength(3 * 4); // 3 invocations × 4 posts each
    expect(slack.delivered()).toEqual([]);
    const dead = await sqs.send(new ReceiveMessageCommand({ QueueUrl: dlq, MessageAttributeNames: ['All'], MaxNumberOfMessages: 10 }));
    expect(dead.Messages).toHaveLength(1);
    const event = JSON.parse(dead.Messages![0]!.Body!) as { Records: Array<{ Sns: { Message: string } }> };
    expect(event.Records[0]!.Sns.Message).toBe(message);
    expect(dead.Messages![0]!.MessageAttributes?.ErrorMessage?.StringValue).toMatch(/Slack did not take the message after 4 attempts \(last: HTTP 503/);

    // Slack is back: replaying the dead-lettered event delivers it (its claim was given back).
    slack.fallback = 200;
    await deliver(message);
    expect(slack.delivered()).toHaveLength(1);
  });

  it('a Quorum Keeper workflow alert reads the same way, naming member and instance', async () => {
    const published: string[] = [];
    const sns = { send: (cmd: { input: { Message?: string; Subject?: string } }) => { published.push(cmd.input.Message ?? ''); return Promise.resolve({}); } };
    await snsAlerter(sns as never, ctl.topicArn, ctl.lock).alert({
      severity: 'critical', cluster: 'prod', member: 'etcd-b', instanceId: 'i-0123456789abcdef0', flow: 'replacement', step: 'volume',
      summary: 'volume vol-0abc is attached to i-0fff (running): refusing to take it', action: 'Terminate the stale instance, then re-run the lifecycle action.', dedupeKey: 'prod#volume',
    });
    await deliver(published[0]!);
    const msg = slack.delivered()[0]!.payload;
    expect(texts(msg.blocks)).toContain('*Member*\netcd-b');
    expect(texts(msg.blocks)).toContain('*Instance*\ni-0123456789abcdef0');
    expect(msg.text).toMatch(/Next: Terminate the stale instance/);
  });

  it('a message it does not understand is passed on as text, not dropped; a malformed event is refused', async () => {
    await deliver('Hello from an operator test publish');
    expect(slack.delivered()[0]!.payload.text).toMatch(/Hello from an operator test publish/);
    await expect(handler({ Records: [{ EventSource: 'aws:s3' }] })).rejects.toThrow(/invalid SNS event/);
  });
});
