/**
 * quorum-keeper — the operator CLI. Works against real AWS (default credential chain,
 * --region, --profile) and against the local sandbox (--endpoint).
 *
 *   quorum-keeper status       --cluster C                      members, etcd, volumes, LB, newest backup
 *   quorum-keeper plan         --cluster C                      what the reconciler would do (read-only)
 *   quorum-keeper reconcile    --cluster C [--dry-run]          do it now, with the Lambdas' locks (--state-table)
 *   quorum-keeper backup       --cluster C                      take a backup now
 *   quorum-keeper backups list --cluster C                      backups, oldest first
 *   quorum-keeper restore      --cluster C [--snapshot latest|KEY] [--force] [--yes] [--token T]
 *   quorum-keeper restore      --cluster C --rollback TOKEN [--yes]
 *
 * Human output by default (progress on stderr), --json for scripts (one JSON document on stdout).
 * Exit codes: 0 done (status: healthy), 1 failed (reconcile: a step failed), 2 usage, 3 refused (nothing changed),
 * 4 aborted at the prompt, 5 status: the cluster is degraded.
 */
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { type Alerter, snsAlerter } from '../lib/aws/alerts';
import { type BackupStore, listBackups } from '../lib/aws/backups';
import { systemClock } from '../lib/clock';
import { DEFAULT_RETENTION } from '../lib/domain/retention';
import { type BackupDeps, type BackupSettings, backupCluster, DEFAULT_WORK_DIR } from '../lib/flows/backup';
import { AWS_TIMINGS, type FlowDeps } from '../lib/flows/deps';
import { ClusterLock } from '../lib/aws/lock';
import { dynamoReconcileMemory } from '../lib/aws/reconcile-memory';
import { clusterStatus } from '../lib/flows/status';
import { renderStatus } from './render/status';
import { planCluster, reconcileCluster, withLockView } from '../lib/flows/reconcile';
import { DEFAULT_RECONCILE, describeAction, type ReconcileSettings } from '../lib/domain/reconcile';
import { RestoreFailed, RestoreRefused, restoreCluster, type RestoreDeps, type RestorePlan, rollbackRestore } from '../lib/flows/restore';
import { loadHostScripts } from '../lib/host/fs-bundle';
import { patterns } from '../lib/validate';

const USAGE = `usage: quorum-keeper <command> [options]

commands:
  status        --cluster C                       members, etcd roles and lag, volumes, LB health,
                                                  newest backup; exit 5 when degraded
  plan          --cluster C [--pending-grace-sec N] [--repair-grace-sec N] [--stray-grace-sec N]
                                                  what the reconciler would do now (read-only)
  reconcile     --cluster C [--dry-run] [--pending-grace-sec N] [--repair-grace-sec N] [--stray-grace-sec N]
                                                  what the scheduled reconciler does, now; needs
                                                  --state-table (the same locks as the Lambdas)
  backup        --cluster C                       take a verified backup now
  backups list  --cluster C                       list the cluster's backups (oldest first)
  restore       --cluster C [--snapshot latest|KEY] [--force] [--yes] [--token T]
                                                  disaster recovery from a backup
  restore       --cluster C --rollback TOKEN [--yes]
                                                  put back the data a restore set aside

options:
  --bucket B          backup bucket (or QK_BACKUP_BUCKET; optional for status)
  --prefix P          key prefix (default etcd-backups, or QK_BACKUP_PREFIX)
  --kms-key-id K      KMS key for new backups (default: the bucket's)
  --region R          AWS region (or AWS_REGION)
  --profile P         AWS profile (or AWS_PROFILE)
  --endpoint URL      one endpoint for every AWS service (the local sandbox)
  --json              one JSON document on stdout instead of human output
  --yes               do not ask for confirmation
  --force             restore even though the cluster still has quorum
  --state-table T     the deployment's state table: locks, memory (or QK_STATE_TABLE; plan
                      then also sees flows in progress)
  --alert-topic-arn A alerts go to this SNS topic (or QK_ALERT_TOPIC_ARN; default: stderr)
`;

class UsageError extends Error {}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Asks a question on the terminal; null when there is no terminal. */
  ask: ((q: string) => Promise<string>) | null;
  env: NodeJS.ProcessEnv;
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv, allowPositionals: true, strict: true,
    options: {
      cluster: { type: 'string' }, snapshot: { type: 'string' }, token: { type: 'string' }, rollback: { type: 'string' },
      bucket: { type: 'string' }, prefix: { type: 'string' }, 'kms-key-id': { type: 'string' },
      region: { type: 'string' }, profile: { type: 'string' }, endpoint: { type: 'string' },
      json: { type: 'boolean' }, yes: { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' },
      'work-dir': { type: 'string' }, 'tag-cluster': { type: 'string' }, 'tag-member': { type: 'string' },
      'pending-grace-sec': { type: 'string' }, 'stray-grace-sec': { type: 'string' }, 'repair-grace-sec': { type: 'string' },
      'dry-run': { type: 'boolean' }, 'state-table': { type: 'string' }, 'alert-topic-arn': { type: 'string' },
    },
  });
  return { values, positionals };
}

type Values = ReturnType<typeof parse>['values'];

function need(v: string | undefined, name: string, pattern?: RegExp): string {
  if (!v) throw new UsageError(`missing --${name}`);
  if (pattern && !pattern.test(v)) throw new UsageError(`invalid --${name} ${JSON.stringify(v)}`);
  return v;
}

function context(v: Values, io: CliIo, opts: { bucket: 'required' | 'optional' } = { bucket: 'required' }) {
  const region = v.region ?? io.env.AWS_REGION ?? io.env.AWS_DEFAULT_REGION;
  if (!region) throw new UsageError('no region: pass --region or set AWS_REGION');
  if (v.profile) io.env.AWS_PROFILE = v.profile; // read by the SDK's default credential chain
  const endpoint = v.endpoint ?? io.env.QK_AWS_ENDPOINT;
  if (endpoint && !/^https?:\/\/[A-Za-z0-9.-]+(:\d{1,5})?\/?$/.test(endpoint)) throw new UsageError(`invalid --endpoint ${JSON.stringify(endpoint)}`);
  // Explicit keys in the given environment win (tests); otherwise the SDK's default chain.
  const keys = io.env.AWS_ACCESS_KEY_ID && io.env.AWS_SECRET_ACCESS_KEY
    ? { credentials: { accessKeyId: io.env.AWS_ACCESS_KEY_ID, secretAccessKey: io.env.AWS_SECRET_ACCESS_KEY, ...(io.env.AWS_SESSION_TOKEN ? { sessionToken: io.env.AWS_SESSION_TOKEN } : {}) } }
    : {};
  const cfg = { region, maxAttempts: 5, ...(endpoint ? { endpoint } : {}), ...keys };
  const bucketArg = v.bucket ?? io.env.QK_BACKUP_BUCKET;
  const bucket = opts.bucket === 'optional' && !bucketArg ? '' : need(bucketArg, 'bucket', /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/);
  const store: BackupStore = {
    bucket, prefix: v.prefix ?? io.env.QK_BACKUP_PREFIX ?? 'etcd-backups',
    ...((v['kms-key-id'] ?? io.env.QK_BACKUP_KMS_KEY_ID) ? { kmsKeyId: (v['kms-key-id'] ?? io.env.QK_BACKUP_KMS_KEY_ID)! } : {}),
  };
  const progress: FlowDeps['progress'] = (e) => {
    if (e.status !== 'start' && !v.json) io.err(`${new Date().toISOString().slice(11, 19)} ${e.status === 'fail' ? '✗' : e.status === 'ok' ? '✓' : '…'} ${e.step}: ${e.detail}`);
  };
  const clients = {
    asg: new AutoScalingClient(cfg), ssm: new SSMClient(cfg), s3: new S3Client({ ...cfg, forcePathStyle: Boolean(endpoint) }),
    ec2: new EC2Client(cfg), elb: new ElasticLoadBalancingV2Client(cfg), ddb: new DynamoDBClient(cfg), sns: new SNSClient(cfg),
  };
  const deps = {
    ...clients, scripts: loadHostScripts(join(__dirname, '..', 'host')), clock: systemClock,
    tags: { cluster: v['tag-cluster'] ?? io.env.QK_TAG_CLUSTER ?? 'quorum-keeper/cluster', member: v['tag-member'] ?? io.env.QK_TAG_MEMBER ?? 'quorum-keeper/etcd-member' },
    timings: endpoint ? { minDelaySec: 0.25, maxDelaySec: 0.5 } : { minDelaySec: 2, maxDelaySec: 10 }, progress,
  };
  const close = () => Object.values(clients).forEach((c) => c.destroy());
  // `store` is only meaningful with a bucket: commands that may run without one use `optionalStore`.
  return { deps, clients, store, optionalStore: bucket ? store : null, close, workDir: v['work-dir'] ?? DEFAULT_WORK_DIR };
}

type Ctx = ReturnType<typeof context>;

function backupSettingsOf(ctx: Ctx, store: BackupStore): BackupSettings {
  return { store, workDir: ctx.workDir, compressor: 'auto', retention: DEFAULT_RETENTION, staleAfterSec: DEFAULT_RECONCILE.backupStaleAfterSec };
}

function printPlan(p: RestorePlan, io: CliIo): void {
  const m = p.snapshot.meta;
  io.err([
    '',
    `RESTORE PLAN for cluster ${p.cluster}`,
    `  cluster now:  ${p.health}${p.hasQuorum ? '  ← STILL HAS QUORUM (--force)' : ''}`,
    `  snapshot:     ${p.snapshot.key}`,
    `                taken ${m.takenAt.toISOString()} from ${m.member}; revision ${m.revision}; ${m.keys ?? '?'} keys; ${m.size} bytes (${m.compressor})`,
    `  new token:    ${p.token}`,
    '  members:',
    ...p.members.map((x) => `    ${x.member.padEnd(10)} ${x.instanceId.padEnd(20)} ${x.peerUrl}`),
    '  Every member\'s etcd is stopped; its current data dir is moved aside (not deleted);',
    '  every write made after the snapshot is discarded.',
    '',
  ].join('\n'));
}

async function confirm(v: Values, io: CliIo, question: string, expected: string): Promise<boolean> {
  if (v.yes) return true;
  if (!io.ask) throw new UsageError('no terminal to confirm on: pass --yes to go ahead without a prompt');
  return (await io.ask(`${question} Type "${expected}" to continue: `)).trim() === expected;
}

async function cmdRestore(v: Values, io: CliIo): Promise<number> {
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const ctx = context(v, io);
  const deps: RestoreDeps = ctx.deps;
  try {
    if (v.rollback) {
      const token = need(v.rollback, 'rollback', patterns.token);
      if (!(await confirm(v, io, `Roll back ${cluster}: stop etcd everywhere and put back the data set aside by restore ${token}.`, cluster))) return 4;
      const members = await rollbackRestore(deps, cluster, token);
      if (v.json) io.out(JSON.stringify({ result: 'rolled-back', cluster, token, members }));
      else io.out(`rolled back ${cluster}: ${members.map((m) => m.member).join(', ')} are running on their pre-restore data again`);
      return 0;
    }
    const summary = await restoreCluster(deps, {
      cluster, snapshot: v.snapshot ?? 'latest', store: ctx.store, workDir: ctx.workDir, force: Boolean(v.force), ...(v.token ? { token: v.token } : {}),
      confirm: async (plan) => {
        if (!v.json) printPlan(plan, io);
        return confirm(v, io, 'This replaces the cluster\'s data with the snapshot.', cluster);
      },
    });
    if (v.json) {
      io.out(JSON.stringify({ ...summary, plan: { ...summary.plan, snapshot: { key: summary.plan.snapshot.key, meta: { ...summary.plan.snapshot.meta, takenAt: summary.plan.snapshot.meta.takenAt.toISOString() } } } }));
    } else if (summary.result === 'aborted') {
      io.out('aborted: nothing was changed');
    } else {
      io.out([
        `restored ${cluster} from ${summary.plan.snapshot.key} in ${(summary.ms / 1000).toFixed(1)} s`,
        `  revision ${summary.revision} (snapshot ${summary.plan.snapshot.meta.revision}); ${summary.keysAtSnapshotRevision} keys at the snapshot revision`,
        `  discardedAfterRevision: ${summary.discardedAfterRevision ?? 'unknown (no member had readable data)'} — revisions newer than the snapshot that this restore set aside`,
        ...summary.members.map((m) => `  ${m.member.padEnd(10)} ${m.instanceId.padEnd(20)} previous data ${m.asideDir ? `kept at ${m.asideDir} (revision ${m.previousRevision ?? '?'})` : 'none'}`),
        `  roll back with: quorum-keeper restore --cluster ${cluster} --rollback ${summary.plan.token}`,
        '  Next: restart kube-apiserver on every master; old API server endpoints may linger in the `kubernetes` Endpoints until their leases expire.',
      ].join('\n'));
    }
    return summary.result === 'aborted' ? 4 : 0;
  } finally {
    ctx.close();
  }
}

async function cmdStatus(v: Values, io: CliIo): Promise<number> {
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const ctx = context(v, io, { bucket: 'optional' });
  try {
    const s = await clusterStatus(ctx.deps, cluster, ctx.optionalStore ? { store: ctx.optionalStore } : {});
    io.out(v.json ? JSON.stringify(s) : renderStatus(s));
    return s.healthy ? 0 : 5;
  } finally {
    ctx.close();
  }
}

function seconds(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  if (!/^\d{1,6}$/.test(v)) throw new UsageError(`invalid --${name} ${JSON.stringify(v)}: whole seconds`);
  return Number(v);
}

function reconcileSettings(v: Values): ReconcileSettings {
  return {
    ...DEFAULT_RECONCILE,
    pendingGraceSec: seconds(v['pending-grace-sec'], 'pending-grace-sec', DEFAULT_RECONCILE.pendingGraceSec),
    repairGraceSec: seconds(v['repair-grace-sec'], 'repair-grace-sec', DEFAULT_RECONCILE.repairGraceSec),
    strayGraceSec: seconds(v['stray-grace-sec'], 'stray-grace-sec', DEFAULT_RECONCILE.strayGraceSec),
  };
}

/** The deployment's state table (locks, alert de-duplication, the reconciler's memory), if named. */
function stateTable(v: Values, io: CliIo, ctx: Ctx): { table: string; lock: ClusterLock } | null {
  const table = v['state-table'] ?? io.env.QK_STATE_TABLE;
  if (!table) return null;
  if (!/^[A-Za-z0-9_.-]{3,255}$/.test(table)) throw new UsageError(`invalid --state-table ${JSON.stringify(table)}`);
  return { table, lock: new ClusterLock(ctx.clients.ddb, systemClock, { table, ttlSec: 900 }) };
}

function printedAlerter(io: CliIo): Alerter {
  return { alert: (a) => Promise.resolve(io.err(`ALERT [${a.severity}] ${a.summary}\n  what to do: ${a.action}`) ?? true) };
}

async function cmdPlan(v: Values, io: CliIo): Promise<number> {
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const settings = reconcileSettings(v);
  const ctx = context(v, io, { bucket: 'optional' });
  try {
    const state = stateTable(v, io, ctx);
    const read = state ? withLockView(ctx.deps, state.lock, dynamoReconcileMemory(ctx.clients.ddb, state.table, systemClock)) : ctx.deps;
    const { plan } = await planCluster(read, cluster, settings, ctx.optionalStore ? { store: ctx.optionalStore } : {});
    if (v.json) {
      io.out(JSON.stringify({ cluster, drift: plan.drift, actions: plan.actions, notes: plan.notes }));
    } else {
      io.out([
        `plan for ${cluster}: ${plan.actions.length ? `${plan.actions.length} action(s), drift ${plan.drift}` : 'nothing to do'} (read-only; nothing was changed)`,
        ...plan.actions.map((a, i) => `  ${i + 1}. ${describeAction(a)}`),
        ...plan.notes.map((n) => `  note: ${n}`),
        ...(state ? [] : ['  (no --state-table: flows in progress and remembered strays are not seen)']),
      ].join('\n'));
    }
    return 0;
  } finally {
    ctx.close();
  }
}

async function cmdReconcile(v: Values, io: CliIo): Promise<number> {
  if (v['dry-run']) return cmdPlan(v, io);
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const settings = reconcileSettings(v);
  const ctx = context(v, io, { bucket: 'optional' });
  try {
    const state = stateTable(v, io, ctx);
    if (!state) throw new UsageError('missing --state-table (or QK_STATE_TABLE): the reconciler takes the same locks as the deployed functions, so it never races them');
    const topic = v['alert-topic-arn'] ?? io.env.QK_ALERT_TOPIC_ARN;
    if (topic && !/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/.test(topic)) throw new UsageError(`invalid --alert-topic-arn ${JSON.stringify(topic)}`);
    const out = await reconcileCluster({
      ...ctx.deps,
      lock: state.lock,
      alerter: topic ? snsAlerter(ctx.clients.sns, topic, state.lock) : printedAlerter(io),
      timings: { ...AWS_TIMINGS, ...ctx.deps.timings },
      memory: dynamoReconcileMemory(ctx.clients.ddb, state.table, systemClock),
      ...(ctx.optionalStore ? { backup: { s3: ctx.clients.s3, settings: backupSettingsOf(ctx, ctx.optionalStore) } } : {}),
    }, cluster, settings);
    const failed = out.steps.filter((x) => x.result === 'failed').length;
    if (v.json) {
      io.out(JSON.stringify({
        cluster, drift: out.drift, failed,
        steps: out.steps.map((x) => ({ kind: x.action.kind, result: x.result, detail: x.detail, action: x.action })), notes: out.plan.notes,
      }));
    } else {
      const mark = { done: '✓', skipped: '-', failed: '✗' } as const;
      io.out([
        out.steps.length ? `reconciled ${cluster}: drift ${out.drift}, ${out.steps.length - failed} of ${out.steps.length} step(s) done or not needed${failed ? `, ${failed} FAILED` : ''}` : `reconciled ${cluster}: in shape, nothing to do`,
        ...out.steps.map((x) => `  ${mark[x.result]} ${describeAction(x.action)}\n      → ${x.detail}`),
        ...out.plan.notes.map((n) => `  note: ${n}`),
      ].join('\n'));
    }
    return failed ? 1 : 0;
  } finally {
    ctx.close();
  }
}

async function cmdBackup(v: Values, io: CliIo): Promise<number> {
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const ctx = context(v, io);
  const deps: BackupDeps = { ...ctx.deps, alerter: printedAlerter(io) };
  try {
    const out = await backupCluster(deps, cluster, backupSettingsOf(ctx, ctx.store));
    if (v.json) io.out(JSON.stringify(out));
    else if (out.result === 'uploaded') io.out(`backed up ${cluster}: s3://${ctx.store.bucket}/${out.key} (revision ${out.revision}, ${out.keys ?? '?'} keys, ${out.size} bytes, from ${out.member} (${out.role}), ${(out.ms.total / 1000).toFixed(1)} s)`);
    else io.out(`backup of ${cluster} FAILED at ${out.failure?.step}: ${out.failure?.message}`);
    return out.result === 'uploaded' ? 0 : 1;
  } finally {
    ctx.close();
  }
}

async function cmdBackupsList(v: Values, io: CliIo): Promise<number> {
  const cluster = need(v.cluster, 'cluster', patterns.clusterName);
  const ctx = context(v, io);
  try {
    const list = await listBackups(ctx.deps.s3, ctx.store, cluster);
    const now = Date.now();
    if (v.json) {
      io.out(JSON.stringify(list.map((b) => ({ key: b.key, member: b.member, takenAt: b.takenAt.toISOString(), ageSec: Math.round((now - b.takenAt.getTime()) / 1000), size: b.size, compressor: b.compressor }))));
    } else if (list.length === 0) {
      io.out(`no backups of ${cluster} in s3://${ctx.store.bucket}/${ctx.store.prefix}/${cluster}/`);
    } else {
      io.out(['TAKEN (UTC)           AGE       MEMBER     SIZE        KEY']
        .concat(list.map((b) => {
          const age = (now - b.takenAt.getTime()) / 1000;
          const ageText = age < 3600 ? `${Math.round(age / 60)} min` : age < 172_800 ? `${(age / 3600).toFixed(1)} h` : `${Math.round(age / 86_400)} d`;
          return `${b.takenAt.toISOString().slice(0, 19).replace('T', ' ')}   ${ageText.padEnd(9)} ${b.member.padEnd(10)} ${String(b.size).padEnd(11)} ${b.key}`;
        })).join('\n'));
    }
    return 0;
  } finally {
    ctx.close();
  }
}

export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    const { values, positionals } = parse(argv);
    if (values.help || positionals.length === 0) {
      io.out(USAGE);
      return positionals.length === 0 && !values.help ? 2 : 0;
    }
    const cmd = positionals.join(' ');
    switch (cmd) {
      case 'status': return await cmdStatus(values, io);
      case 'plan': return await cmdPlan(values, io);
      case 'reconcile': return await cmdReconcile(values, io);
      case 'restore': return await cmdRestore(values, io);
      case 'backup': return await cmdBackup(values, io);
      case 'backups list': case 'backups': return await cmdBackupsList(values, io);
      default: throw new UsageError(`unknown command "${cmd}"`);
    }
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      io.err(`quorum-keeper: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof RestoreRefused) {
      io.err(`refused: ${err.message}\nNothing was changed.`);
      return 3;
    }
    if (err instanceof RestoreFailed) {
      io.err(`RESTORE FAILED: ${err.message}`);
      return 1;
    }
    io.err(`quorum-keeper: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

/** The process entry (bin/quorum-keeper.js): real terminal, real environment, exit code. */
export function run(): void {
  const rl = process.stdin.isTTY ? createInterface({ input: process.stdin, output: process.stderr }) : null;
  void main(process.argv.slice(2), {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    ask: rl ? (q) => rl.question(q) : null,
    env: process.env,
  }).then((code) => {
    rl?.close();
    process.exitCode = code;
  });
}
