/**
 * Configuration from environment variables, validated once at cold start. A bad value stops
 * the function with one message that names every offending variable.
 */
import { z } from 'zod';
import { DEFAULT_RECOVERY, type RecoverySettings } from './domain/recovery';

const seconds = (dflt: number) => z.coerce.number().int().min(1).max(3600).default(dflt);

const base = z.object({
  AWS_REGION: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-1'),
  /** Only for the local sandbox / tests: an explicit endpoint for every AWS client. */
  QK_AWS_ENDPOINT: z.url({ protocol: /^https?$/ }).optional(),
  QK_TAG_CLUSTER: z.string().min(1).max(128).default('quorum-keeper/cluster'),
  QK_TAG_MEMBER: z.string().min(1).max(128).default('quorum-keeper/etcd-member'),
  /**
   * The clusters this deployment serves (the stack's `clusters` parameter, comma-separated). Its
   * IAM conditions name exactly these tag values, so the functions act on no other cluster;
   * empty = every cluster the tags mark (the roles then only test that the tag is present).
   */
  QK_CLUSTERS: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((c) => c.trim()).filter(Boolean).join(',') : v), z.string().regex(/^$|^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(,[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,99}$/, 'must be comma-separated cluster names, or empty')).default('')
    .transform((v) => (v === '' ? [] : v.split(','))),
});

const flows = base.extend({
  /** DynamoDB table for the per-cluster lock and alert de-duplication (key `pk`, TTL `ttl`). */
  QK_STATE_TABLE: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'must be a DynamoDB table name'),
  /** SNS topic for alerts. */
  QK_ALERT_TOPIC_ARN: z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/, 'must be an SNS topic ARN'),
  /** Polling floor/ceiling for SDK waiters and polls (AWS: 2/15; the sandbox uses 1/1). */
  QK_POLL_MIN_DELAY_SEC: seconds(2),
  QK_POLL_MAX_DELAY_SEC: seconds(15),
  /**
   * How long one retirement run waits for its turn to leave before it ends with the hook held
   * (the reconciler keeps it alive and finishes it). Below the lifecycle Lambda's 900 s timeout.
   */
  QK_DEPARTURE_WAIT_SEC: z.coerce.number().int().min(0).max(780).default(600),
  /**
   * The backup bucket and prefix, read (never written) by the replacement before it seeds a new
   * cluster: no cluster is seeded while a backup of it exists. Without a bucket, none is seeded.
   */
  QK_BACKUP_BUCKET: z.preprocess((v) => (v === '' ? undefined : v), z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name').optional()),
  QK_BACKUP_PREFIX: z.string().regex(/^[A-Za-z0-9._-]{1,64}(\/[A-Za-z0-9._-]{1,64}){0,3}$/, 'must be a key prefix such as etcd-backups (no leading or trailing slash)').default('etcd-backups'),
});

const hours = (dflt: number) => z.coerce.number().int().min(0).max(10_000).default(dflt);

const backup = flows.extend({
  /** Bucket for etcd backups (SSE-KMS by default, versioned; see serverless.yml). */
  QK_BACKUP_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name'),
  QK_BACKUP_PREFIX: z.string().regex(/^[A-Za-z0-9._-]{1,64}(\/[A-Za-z0-9._-]{1,64}){0,3}$/, 'must be a key prefix such as etcd-backups (no leading or trailing slash)').default('etcd-backups'),
  /** KMS key for SSE-KMS (ARN, key ID or alias/...); empty = the bucket's default key. */
  QK_BACKUP_KMS_KEY_ID: z.preprocess((v) => (v === '' ? undefined : v), z.string().regex(/^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)\/[A-Za-z0-9/_-]{1,256}|alias\/[A-Za-z0-9/_-]{1,256}|[0-9a-f-]{36})$/, 'must be a KMS key ARN, key ID or alias/name').optional()),
  QK_BACKUP_COMPRESSOR: z.enum(['auto', 'zstd', 'gzip']).default('auto'),
  QK_BACKUP_WORK_DIR: z.string().regex(/^\/[A-Za-z0-9._/-]{1,255}$/, 'must be an absolute path').refine((v) => !v.includes('..'), 'must not contain ..').default('/var/lib/quorum-keeper/snapshots'),
  /** The newest good backup older than this raises an alert (default 2 × the 30 min schedule). */
  QK_BACKUP_STALE_AFTER_SEC: z.coerce.number().int().min(60).max(30 * 86_400).default(3600),
  QK_RETENTION_KEEP_ALL_HOURS: hours(24),
  QK_RETENTION_DAILY_DAYS: hours(7),
  QK_RETENTION_WEEKLY_WEEKS: hours(8),
});

const probe = flows.extend({
  /** kube-system leader-election Leases the probe watches (comma-separated). */
  QK_PROBE_LEASES: z.string().regex(/^[a-z0-9][a-z0-9.-]{0,62}(,[a-z0-9][a-z0-9.-]{0,62}){0,3}$/, 'must be up to 4 comma-separated Lease names').default('kube-controller-manager,kube-scheduler'),
  /** etcd --quota-backend-bytes on the masters (etcd's default: 2 GiB). */
  QK_ETCD_QUOTA_BYTES: z.coerce.number().int().min(1024 * 1024).max(64 * 1024 ** 3).default(2 * 1024 ** 3),
});

const reconcile = backup.extend({
  /** A `Pending:Wait` master is re-driven once it has waited this long with no flow driving its slot. */
  QK_RECONCILE_PENDING_GRACE_SEC: z.coerce.number().int().min(0).max(86_400).default(300),
  /** An InService master that is not whole (etcd, volume, target) is repaired once it stayed so this long. */
  QK_RECONCILE_REPAIR_GRACE_SEC: z.coerce.number().int().min(0).max(86_400).default(300),
  /** An etcd member with no slot is removed only after it has been seen this long. */
  QK_RECONCILE_STRAY_GRACE_SEC: z.coerce.number().int().min(0).max(7 * 86_400).default(600),
  /**
   * The clusters whose quorum loss the reconciler recovers by itself (restore from the best
   * surviving copy), comma-separated, or `*` for all; empty (the default) = manual everywhere:
   * the reconciler alerts with what `quorum-keeper recover` would do. Members down on their own
   * data are started in every cluster (that discards nothing).
   */
  QK_RECOVERY_AUTOMATIC: z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((c) => c.trim()).filter(Boolean).join(',') : v), z.string().regex(/^$|^\*$|^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(,[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?){0,99}$/, 'must be `*` or comma-separated cluster names, or empty')).default('')
    .transform((v) => (v === '' ? [] : v.split(','))),
  /** How long quorum must stay lost, with no way back by itself, before an automatic restore. */
  QK_RECOVERY_WAIT_SEC: z.coerce.number().int().min(0).max(86_400).default(600),
});

const notifier = base.extend({
  QK_STATE_TABLE: z.string().regex(/^[A-Za-z0-9_.-]{3,255}$/, 'must be a DynamoDB table name'),
  /** SSM Parameter Store SecureString holding the Slack incoming-webhook URL; empty = no Slack. */
  QK_SLACK_WEBHOOK_PARAMETER: z.preprocess((v) => (v === '' ? undefined : v), z.string().regex(/^\/?[A-Za-z0-9_./-]{1,1011}$/, 'must be an SSM parameter name').optional()),
  /** The same alarm in the same state within this many seconds yields one Slack message. */
  QK_NOTIFY_DEDUPE_SEC: z.coerce.number().int().min(0).max(86_400).default(900),
  /** Slack posts per message before the invocation fails (then Lambda retries, then the DLQ). */
  QK_SLACK_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(4),
  QK_SLACK_RETRY_BASE_MS: z.coerce.number().int().min(1).max(10_000).default(500),
});

export type Config = z.infer<typeof base>;
export type NotifierConfig = z.infer<typeof notifier>;
export type ProbeConfig = z.infer<typeof probe>;
export type FlowConfig = z.infer<typeof flows>;
export type BackupConfig = z.infer<typeof backup>;
export type ReconcileConfig = z.infer<typeof reconcile>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

function parse<T>(schema: z.ZodType<T>, env: NodeJS.ProcessEnv): T {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new ConfigError(`invalid Quorum Keeper configuration: ${problems}`);
  }
  return parsed.data;
}

/** A loader of one function's configuration: validated at cold start, with every problem named. */
const loader = <T>(schema: z.ZodType<T>) => (env: NodeJS.ProcessEnv = process.env): T => parse(schema, env);

export const loadConfig = loader<Config>(base);
export const loadFlowConfig = loader<FlowConfig>(flows);
export const loadBackupConfig = loader<BackupConfig>(backup);
export const loadProbeConfig = loader<ProbeConfig>(probe);
export const loadNotifierConfig = loader<NotifierConfig>(notifier);
export const loadReconcileConfig = loader<ReconcileConfig>(reconcile);

/** A cluster's quorum-loss recovery settings: automatic where the deployment opted it in. */
export function recoverySettings(cfg: Pick<ReconcileConfig, 'QK_RECOVERY_AUTOMATIC' | 'QK_RECOVERY_WAIT_SEC'>, cluster: string): RecoverySettings {
  const automatic = cfg.QK_RECOVERY_AUTOMATIC.includes('*') || cfg.QK_RECOVERY_AUTOMATIC.includes(cluster);
  return { ...DEFAULT_RECOVERY, mode: automatic ? 'automatic' : 'manual', waitSec: cfg.QK_RECOVERY_WAIT_SEC };
}
