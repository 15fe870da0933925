/**
 * Quorum Keeper's own resources in the sandbox (lock table, alert topic with an SQS queue
 * subscribed so tests can read what operators would receive), and FlowDeps wired to it.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { snsAlerter } from '../lib/aws/alerts';
import { ClusterLock } from '../lib/aws/lock';
import { systemClock } from '../lib/clock';
import { AWS_TIMINGS, type FlowDeps, type FlowTimings } from '../lib/flows/deps';
import { hostScripts, type SandboxClients } from './cluster';
import type { Sandbox } from './sandbox';

export const SANDBOX_TIMINGS: FlowTimings = {
  ...AWS_TIMINGS, minDelaySec: 1, maxDelaySec: 1, agentTimeoutSec: 60, volumeTimeoutSec: 30, predecessorTimeoutSec: 60,
  lockTimeoutSec: 90, peerTimeoutSec: 15, catchUpTimeoutSec: 60, targetTimeoutSec: 30,
};

export interface Control {
  ddb: DynamoDBClient;
  sns: SNSClient;
  sqs: SQSClient;
  table: string;
  topicArn: string;
  queueUrl: string;
  lock: ClusterLock;
}

export async function provisionControl(sandbox: Sandbox): Promise<Control> {
  const cfg = sandbox.clientConfig();
  const ddb = new DynamoDBClient(cfg);
  const sns = new SNSClient(cfg);
  const sqs = new SQSClient(cfg);
  const table = 'quorum-keeper-state';
  await ddb.send(new CreateTableCommand({
    TableName: table, BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }], KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
  }));
  const topicArn = (await sns.send(new CreateTopicCommand({ Name: 'quorum-keeper-alerts' }))).TopicArn!;
  const queueUrl = (await sqs.send(new CreateQueueCommand({ QueueName: 'alerts-inbox' }))).QueueUrl!;
  const queueArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
  await sns.send(new SubscribeCommand({ TopicArn: topicArn, Protocol: 'sqs', Endpoint: queueArn, Attributes: { RawMessageDelivery: 'true' } }));
  return { ddb, sns, sqs, table, topicArn, queueUrl, lock: new ClusterLock(ddb, systemClock, { table, ttlSec: 120 }) };
}

export function destroyControl(ctl: Control): void {
  ctl.ddb.destroy();
  ctl.sns.destroy();
  ctl.sqs.destroy();
}

/** Every alert published so far (drains the inbox queue). */
export async function receivedAlerts(ctl: Control): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const r = await ctl.sqs.send(new ReceiveMessageCommand({ QueueUrl: ctl.queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (!r.Messages?.length) return out;
    out.push(...r.Messages.map((m) => m.Body ?? ''));
  }
}

export function sandboxFlowDeps(c: SandboxClients, ctl: Control, progress: FlowDeps['progress'] = () => undefined): FlowDeps {
  return {
    ec2: c.ec2, asg: c.asg, ssm: c.ssm, elb: c.elb,
    lock: ctl.lock,
    alerter: snsAlerter(ctl.sns, ctl.topicArn, ctl.lock),
    scripts: hostScripts(),
    clock: systemClock,
    tags: { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' },
    timings: SANDBOX_TIMINGS,
    progress,
  };
}
