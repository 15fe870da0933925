/**
 * Quorum Keeper's own resources in the sandbox (lock table, alert topic with an SQS queue
 * subscribed so tests can read what operators would receive), and FlowDeps wired to it.
 */
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateTopicCommand, SNSClient, SubscribeCommand } from '@aws-sdk/client-sns';
import { CreateBucketCommand, PutBucketEncryptionCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateQueueCommand, GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ClusterLock } from '../lib/aws/lock';
import { type Clock, systemClock } from '../lib/clock';
import type { BackupStore } from '../lib/aws/backups';
import { backupDeps, compose, flowDeps, probeDeps, reconcileDeps, restoreDeps, type Root, statusDeps } from '../lib/compose';
import type { RestoreDeps } from '../lib/flows/restore';
import { type BackupDeps, type BackupSettings, DEFAULT_WORK_DIR } from '../lib/flows/backup';
import { DEFAULT_RETENTION } from '../lib/domain/retention';
import { AWS_TIMINGS, type FlowDeps, type FlowTimings } from '../lib/flows/deps';
import type { ProbeDeps } from '../lib/flows/probe';
import type { ReconcileDeps } from '../lib/flows/reconcile';
import type { Progress } from '../lib/flows/run';
import type { StatusDeps } from '../lib/flows/status';
import { hostScripts, type SandboxClients } from './cluster';
import { type Sandbox, SANDBOX_SESSION_TOKEN } from './sandbox';

/**
 * The sandbox runs an SSM command the moment it is sent, so a waiter's poll floor there is pure
 * added latency: poll every 0.25–0.5 s (AWS: 2–15 s, where SSM's own delivery takes ~1 s).
 */
export const SANDBOX_TIMINGS: FlowTimings = {
  ...AWS_TIMINGS, minDelaySec: 0.25, maxDelaySec: 0.5, commandMinDelaySec: 0.25, commandMaxDelaySec: 0.5, agentTimeoutSec: 60, volumeTimeoutSec: 30, predecessorTimeoutSec: 60,
  lockTimeoutSec: 90, peerTimeoutSec: 15, catchUpTimeoutSec: 60, targetTimeoutSec: 30, departureWaitSec: 15, bootstrapTimeoutSec: 90,
};

export interface Control {
  ddb: DynamoDBClient;
  sns: SNSClient;
  sqs: SQSClient;
  /** For flows that read S3 where a test has no backup bucket (status). */
  s3: S3Client;
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
  return { ddb, sns, sqs, s3: new S3Client(cfg), table, topicArn, queueUrl, lock: new ClusterLock(ddb, systemClock, { table }) };
}

export function destroyControl(ctl: Control): void {
  ctl.ddb.destroy();
  ctl.sns.destroy();
  ctl.sqs.destroy();
  ctl.s3.destroy();
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

/** The composition root in the sandbox: the sandbox's clients, its state table and alert topic. */
/** `clock`: the caller's own clock (e.g. a laptop's, hours off); AWS time is learnt from the answers. */
export function sandboxRoot(c: SandboxClients, ctl: Control, o: { backups?: BackupTarget; progress?: Progress; clock?: Clock } = {}): Root {
  return compose({
    clients: { ...c, ddb: ctl.ddb, sns: ctl.sns, s3: o.backups?.s3 ?? ctl.s3 },
    scripts: hostScripts(), tags: { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' }, timings: SANDBOX_TIMINGS,
    stateTable: ctl.table, alertTopicArn: ctl.topicArn, ...(o.backups ? { backupStore: o.backups.store } : {}), ...(o.progress ? { progress: o.progress } : {}), ...(o.clock ? { clock: o.clock } : {}),
  });
}

/** With `b`, the flows read the backup bucket (a new cluster is seeded only when it holds no backup of it). */
export function sandboxFlowDeps(c: SandboxClients, ctl: Control, progress?: Progress, b?: BackupTarget): FlowDeps {
  return flowDeps(sandboxRoot(c, ctl, { ...(progress ? { progress } : {}), ...(b ? { backups: b } : {}) }));
}

export interface BackupTarget {
  s3: S3Client;
  kms: KMSClient;
  store: BackupStore;
  kmsKeyArn: string;
}

/** The backup bucket (default SSE-KMS with its own key), as serverless.yml creates it. */
export async function provisionBackups(sandbox: Sandbox, bucket = 'quorum-keeper-backups'): Promise<BackupTarget> {
  const cfg = sandbox.clientConfig();
  const s3 = new S3Client(cfg);
  const kms = new KMSClient(cfg);
  const kmsKeyArn = (await kms.send(new CreateKeyCommand({ Description: 'quorum-keeper backups' }))).KeyMetadata!.Arn!;
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
  await s3.send(new PutBucketEncryptionCommand({
    Bucket: bucket,
    ServerSideEncryptionConfiguration: { Rules: [{ ApplyServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: kmsKeyArn } }] },
  }));
  return { s3, kms, kmsKeyArn, store: { bucket, prefix: 'etcd-backups', kmsKeyId: kmsKeyArn } };
}

export function destroyBackups(b: BackupTarget): void {
  b.s3.destroy();
  b.kms.destroy();
}

export function sandboxBackupSettings(b: BackupTarget, over: Partial<BackupSettings> = {}): BackupSettings {
  return { store: b.store, workDir: DEFAULT_WORK_DIR, compressor: 'auto', retention: DEFAULT_RETENTION, staleAfterSec: 3600, ...over };
}

export function sandboxBackupDeps(c: SandboxClients, ctl: Control, b: BackupTarget, progress?: Progress): BackupDeps {
  return backupDeps(sandboxRoot(c, ctl, { backups: b, ...(progress ? { progress } : {}) }));
}

/** The restore's dependencies in the sandbox: the backups, the state table's member IDs and awaiting-DR records, the load balancer. */
export function sandboxRestoreDeps(c: SandboxClients, ctl: Control, b: BackupTarget, progress?: Progress): RestoreDeps {
  return restoreDeps(sandboxRoot(c, ctl, { backups: b, ...(progress ? { progress } : {}) }));
}

/** The watchdog probe's dependencies in the sandbox (memory in the sandbox state table). */
export function sandboxProbeDeps(c: SandboxClients, ctl: Control): ProbeDeps {
  return probeDeps(sandboxRoot(c, ctl));
}

/** The environment a Lambda entry gets in the sandbox (what serverless.yml gives it on AWS). */
export function sandboxLambdaEnv(sandbox: Sandbox, ctl: Control): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1', QK_AWS_ENDPOINT: sandbox.endpoint, AWS_ACCESS_KEY_ID: 'sandbox', AWS_SECRET_ACCESS_KEY: 'sandbox', AWS_SESSION_TOKEN: SANDBOX_SESSION_TOKEN,
    QK_STATE_TABLE: ctl.table, QK_ALERT_TOPIC_ARN: ctl.topicArn, QK_POLL_MIN_DELAY_SEC: '1', QK_POLL_MAX_DELAY_SEC: '1', POWERTOOLS_LOG_LEVEL: 'ERROR',
  };
}

/** What `quorum-keeper status` reads, in the sandbox. */
export function sandboxStatusDeps(c: SandboxClients, ctl: Control, b?: BackupTarget): StatusDeps {
  return statusDeps(sandboxRoot(c, ctl, { ...(b ? { backups: b } : {}) }));
}

/** The reconciler's dependencies in the sandbox; with `b`, backups are judged and taken there. */
export function sandboxReconcileDeps(c: SandboxClients, ctl: Control, b?: BackupTarget, progress?: Progress): ReconcileDeps {
  return reconcileDeps(sandboxRoot(c, ctl, { ...(b ? { backups: b } : {}), ...(progress ? { progress } : {}) }), b ? sandboxBackupSettings(b) : undefined);
}
