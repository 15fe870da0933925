/**
 * What a command runs with: the global flags checked once (region, endpoint, bucket, state
 * table, …), every AWS client and every flow's deps built in one place (`buildDeps`), and
 * the clients destroyed in one place when the command ends (`withContext`).
 */
import { join } from 'node:path';
import type { S3Client } from '@aws-sdk/client-s3';
import type { Alerter } from '../lib/aws/alerts';
import type { BackupStore } from '../lib/aws/backups';
import { ALL_CLIENTS, awsClients } from '../lib/aws/clients';
import { doctorClients } from '../lib/aws/doctor-clients';
import { DEFAULT_RECOVERY } from '../lib/domain/recovery';
import { adoptDeps, backupDeps, compose, doctorDeps, planDeps, reconcileDeps, restoreDeps, statusDeps } from '../lib/compose';
import { DEFAULT_RECONCILE } from '../lib/domain/reconcile';
import { DEFAULT_RETENTION } from '../lib/domain/retention';
import { type BackupDeps, type BackupSettings, DEFAULT_WORK_DIR } from '../lib/flows/backup';
import { AWS_TIMINGS, withPoll } from '../lib/flows/deps';
import type { ReconcileDeps, ReconcileReadDeps } from '../lib/flows/reconcile';
import type { RestoreDeps } from '../lib/flows/restore';
import type { AdoptDeps } from '../lib/flows/adopt';
import type { Progress } from '../lib/flows/run';
import type { StatusDeps } from '../lib/flows/status';
import type { DoctorDeps } from '../lib/flows/doctor';
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
  /** Null without a state table: adopt records member IDs and the formation there, under the Lambdas' locks. */
  adopt: AdoptDeps | null;
  backupSettings: (store: BackupStore) => BackupSettings;
  /** `doctor`: built when first read (it adds KMS, CloudFormation, EventBridge and Lambda clients). */
  readonly doctor: DoctorDeps;
}

/** Every command's deps, from the one composition root; `close` destroys the clients built. */
export function buildDeps(o: GlobalOptions, io: CliIo): { deps: CliDeps; close: () => void } {
  const clients = awsClients({ region: o.region, endpoint: o.endpoint, credentials: o.credentials }, ALL_CLIENTS);
  const extra = doctorClients({ region: o.region, endpoint: o.endpoint, credentials: o.credentials });
  const progress: Progress = (e) => {
    if (e.status !== 'start' && !o.json) io.err(progressLine(e));
  };
  const printed: Alerter = { alert: (a) => Promise.resolve(io.err(alertText(a)) ?? true) };
  const root = compose({
    clients, scripts: loadHostScripts(join(__dirname, '..', 'host')), tags: o.tags, progress,
    timings: o.endpoint ? withPoll(AWS_TIMINGS, 0.25, 0.5) : withPoll(AWS_TIMINGS, 2, 10),
    stateTable: o.stateTable,
    // Without a topic, alerts are printed (backups always print: the CLI shows what failed).
    ...(o.alertTopicArn ? { alertTopicArn: o.alertTopicArn } : { alerter: printed }),
  });
  const backupSettings = (store: BackupStore): BackupSettings => ({
    store, workDir: o.workDir, compressor: 'auto', retention: DEFAULT_RETENTION, staleAfterSec: DEFAULT_RECONCILE.backupStaleAfterSec,
  });
  const deps: CliDeps = {
    status: statusDeps(root),
    // Quorum loss is judged as the deployed reconciler judges it, recovery manual: members on their
    // own data are started; a restore is only shown (`recover` carries it out).
    plan: planDeps(root, () => DEFAULT_RECOVERY),
    reconcile: root.hasState ? { ...reconcileDeps(root, o.store ? backupSettings(o.store) : undefined), recovery: { settings: () => DEFAULT_RECOVERY, journal: root.restoreJournal } } : null,
    backup: backupDeps(root, printed),
    restore: restoreDeps(root),
    adopt: root.hasState ? adoptDeps(root) : null,
    backupSettings,
    get doctor() { return doctorDeps(root, extra); },
  };
  return { deps, close: () => { clients.destroy(); extra.destroy(); } };
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
