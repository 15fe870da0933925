/**
 * What a command runs with: the global flags checked once (region, endpoint, bucket, state
 * table, …), every AWS client and every flow's deps built in one place (`buildDeps`), and
 * the clients destroyed in one place when the command ends (`withContext`).
 */
import { join } from 'node:path';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { type Alerter, snsAlerter } from '../lib/aws/alerts';
import type { BackupStore } from '../lib/aws/backups';
import { ClusterLock } from '../lib/aws/lock';
import { dynamoReconcileMemory } from '../lib/aws/reconcile-memory';
import { systemClock } from '../lib/clock';
import { DEFAULT_RECONCILE } from '../lib/domain/reconcile';
import { DEFAULT_RETENTION } from '../lib/domain/retention';
import { type BackupDeps, type BackupSettings, DEFAULT_WORK_DIR } from '../lib/flows/backup';
import { AWS_TIMINGS, type HostFlowDeps } from '../lib/flows/deps';
import { type ReconcileDeps, type ReconcileReadDeps, withLockView } from '../lib/flows/reconcile';
import type { RestoreDeps } from '../lib/flows/restore';
import type { StatusDeps } from '../lib/flows/status';
import { loadHostScripts } from '../lib/host/fs-bundle';
import { type CliIo, flag, need, UsageError, type Values } from './args';
import { alertText, progressLine } from './render/stderr';

/** What a command needs beyond the clients. */
export interface Needs {
  /** The backup bucket (`status`, `plan` and `reconcile` work without one). */
  bucket: 'required' | 'optional';
  /** The reconciler's flags: the state table (locks, memory) and the alert topic (`plan`, `reconcile`). */
  reconciler?: boolean;
}

/** The global flags (or their environment variables), checked. */
export interface GlobalOptions {
  region: string;
  endpoint: string | undefined;
  /** Explicit keys from the environment; absent = the SDK's default credential chain. */
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
  /** Null when the bucket is optional and not given. */
  store: BackupStore | null;
  workDir: string;
  tags: { cluster: string; member: string };
  /** Only with `Needs.reconciler`. */
  stateTable?: string | undefined;
  alertTopicArn?: string | undefined;
  json: boolean;
}

/** Checks the global flags; sets AWS_PROFILE for the SDK's credential chain when --profile is given. */
export function globalOptions(v: Values, io: CliIo, needs: Needs): GlobalOptions {
  const env = io.env;
  const region = flag('region', v.region, env.AWS_REGION, env.AWS_DEFAULT_REGION);
  if (!region) throw new UsageError('no region: pass --region or set AWS_REGION');
  const profile = flag('profile', v.profile);
  if (profile) env.AWS_PROFILE = profile; // read by the SDK's default credential chain
  const endpoint = flag('endpoint', v.endpoint, env.QK_AWS_ENDPOINT);
  // Explicit keys in the given environment win (tests); otherwise the SDK's default chain.
  const { AWS_ACCESS_KEY_ID: accessKeyId, AWS_SECRET_ACCESS_KEY: secretAccessKey, AWS_SESSION_TOKEN: sessionToken } = env;
  const credentials = accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) } : undefined;
  const bucket = needs.bucket === 'optional' ? flag('bucket', v.bucket, env.QK_BACKUP_BUCKET) : need('bucket', v.bucket, env.QK_BACKUP_BUCKET);
  const prefix = flag('prefix', v.prefix, env.QK_BACKUP_PREFIX) ?? 'etcd-backups';
  const kmsKeyId = flag('kms-key-id', v['kms-key-id'], env.QK_BACKUP_KMS_KEY_ID);
  return {
    region, endpoint, credentials, store: bucket ? { bucket, prefix, ...(kmsKeyId ? { kmsKeyId } : {}) } : null,
    workDir: flag('work-dir', v['work-dir']) ?? DEFAULT_WORK_DIR,
    tags: {
      cluster: flag('tag-cluster', v['tag-cluster'], env.QK_TAG_CLUSTER) ?? 'quorum-keeper/cluster',
      member: flag('tag-member', v['tag-member'], env.QK_TAG_MEMBER) ?? 'quorum-keeper/etcd-member',
    },
    ...(needs.reconciler ? {
      stateTable: flag('state-table', v['state-table'], env.QK_STATE_TABLE), alertTopicArn: flag('alert-topic-arn', v['alert-topic-arn'], env.QK_ALERT_TOPIC_ARN),
    } : {}),
    json: Boolean(v.json),
  };
}

/** Every command's deps, built from the same clients. */
export interface CliDeps {
  status: StatusDeps & { s3: S3Client };
  /** The reconciler's read; with a state table it also sees the locks and what earlier runs remembered. */
  plan: ReconcileReadDeps;
  /** Null without a state table: the reconciler takes the same locks as the deployed functions. */
  reconcile: ReconcileDeps | null;
  backup: BackupDeps;
  restore: RestoreDeps;
  backupSettings: (store: BackupStore) => BackupSettings;
}

/** Builds every AWS client and every flow's deps; `close` destroys the clients. */
export function buildDeps(o: GlobalOptions, io: CliIo): { deps: CliDeps; close: () => void } {
  const cfg = { region: o.region, maxAttempts: 5, ...(o.endpoint ? { endpoint: o.endpoint } : {}), ...(o.credentials ? { credentials: o.credentials } : {}) };
  const clients = {
    asg: new AutoScalingClient(cfg), ssm: new SSMClient(cfg), s3: new S3Client({ ...cfg, forcePathStyle: Boolean(o.endpoint) }),
    ec2: new EC2Client(cfg), elb: new ElasticLoadBalancingV2Client(cfg), ddb: new DynamoDBClient(cfg), sns: new SNSClient(cfg),
  };
  const progress: HostFlowDeps['progress'] = (e) => {
    if (e.status !== 'start' && !o.json) io.err(progressLine(e));
  };
  const base = {
    ...clients, scripts: loadHostScripts(join(__dirname, '..', 'host')), clock: systemClock, tags: o.tags,
    timings: o.endpoint ? { minDelaySec: 0.25, maxDelaySec: 0.5 } : { minDelaySec: 2, maxDelaySec: 10 }, progress,
  };
  const printed: Alerter = { alert: (a) => Promise.resolve(io.err(alertText(a)) ?? true) };
  const backupSettings = (store: BackupStore): BackupSettings => ({
    store, workDir: o.workDir, compressor: 'auto', retention: DEFAULT_RETENTION, staleAfterSec: DEFAULT_RECONCILE.backupStaleAfterSec,
  });
  const state = o.stateTable
    ? { lock: new ClusterLock(clients.ddb, systemClock, { table: o.stateTable }), memory: dynamoReconcileMemory(clients.ddb, o.stateTable, systemClock) }
    : null;
  const deps: CliDeps = {
    status: base,
    plan: state ? withLockView(base, state.lock, state.memory) : base,
    reconcile: state && {
      ...base, lock: state.lock, memory: state.memory, timings: { ...AWS_TIMINGS, ...base.timings },
      alerter: o.alertTopicArn ? snsAlerter(clients.sns, o.alertTopicArn, state.lock) : printed,
      ...(o.store ? { backup: { s3: clients.s3, settings: backupSettings(o.store) } } : {}),
    },
    backup: { ...base, alerter: printed },
    restore: base,
    backupSettings,
  };
  return { deps, close: () => Object.values(clients).forEach((c) => c.destroy()) };
}

export interface CliContext<S extends BackupStore | null> {
  deps: CliDeps;
  /** The backup bucket and prefix; null only for a command whose bucket is optional. */
  store: S;
  workDir: string;
}

/** Checks the global flags, builds the deps, runs `fn` and destroys the clients however it ends. */
export async function withContext<T>(v: Values, io: CliIo, needs: Needs & { bucket: 'required' }, fn: (ctx: CliContext<BackupStore>) => Promise<T>): Promise<T>;
export async function withContext<T>(v: Values, io: CliIo, needs: Needs, fn: (ctx: CliContext<BackupStore | null>) => Promise<T>): Promise<T>;
export async function withContext<T>(v: Values, io: CliIo, needs: Needs, fn: (ctx: CliContext<BackupStore>) => Promise<T>): Promise<T> {
  const o = globalOptions(v, io, needs);
  const { deps, close } = buildDeps(o, io);
  try {
    // Null only when the bucket is optional (globalOptions refuses a missing required one): the overloads say so.
    return await fn({ deps, store: o.store as BackupStore, workDir: o.workDir });
  } finally {
    close();
  }
}
