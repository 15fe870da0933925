/**
 * The reconcile Lambda entry (middy + Powertools, host scripts embedded as text) against the
 * sandbox: request validation, dry run, one summary line and the drift metric per cluster.
 */
import type { Context } from 'aws-lambda';
import { listBackups } from '../../lib/aws/backups';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxLambdaEnv } from '../../sandbox/control';
import { killMaster, memberOf } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import { captureStdout } from '../support/capture';

jest.setTimeout(180_000);

const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'reconcile', awsRequestId: 'test' } as unknown as Context;
type RunResult = { clusters: Array<{ cluster: string; drift: number | null; summary: string; failed: number; error?: string }> };
type Handler = (event: unknown, ctx: Context) => Promise<RunResult>;
type Emf = Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } };

describe('reconcile handler', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let backups: BackupTarget;
  let cluster: SandboxCluster;
  let handler: Handler;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    ctl = await provisionControl(sandbox);
    backups = await provisionBackups(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    Object.assign(process.env, sandboxLambdaEnv(sandbox, ctl), { QK_BACKUP_BUCKET: backups.store.bucket, QK_RECONCILE_PENDING_GRACE_SEC: '0' });
    handler = (await import('../../functions/reconcile')).handler;
  });
  afterAll(async () => {
    destroyControl(ctl);
    destroyBackups(backups);
    destroyClients(c);
    await sandbox?.stop();
  });

  const invoke = async (event: unknown) => {
    const captured = captureStdout();
    try {
      const out = await handler(event, context);
      const emf = captured.lines.filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l) as Emf);
      return { out, emf };
    } finally {
      captured.restore();
    }
  };

  it('rejects a malformed request with a clear error and no side effect', async () => {
    await expect(handler({ clusters: ['prod; reboot'] }, context)).rejects.toThrow(/invalid reconcile request: clusters\.0: must be a cluster name/);
    await expect(handler({ dryRun: 'yes' }, context)).rejects.toThrow(/invalid reconcile request: dryRun/);
  });

  it('dry run reports the drift and changes nothing; the scheduled run fixes it and publishes the drift it found', async () => {
    const { instanceId } = await killMaster(sandbox, c, memberOf(cluster, 'etcd-c')); // launch event lost

    const dry = await invoke({ clusters: ['prod'], dryRun: true });
    expect(dry.out.clusters).toEqual([expect.objectContaining({ cluster: 'prod', drift: 2, failed: 0 })]);
    expect(dry.out.clusters[0]!.summary).toMatch(/^reconcile prod: drift 2; found: re-drive the replacement of etcd-c .*take a backup \(there is no backup\).*; did: dry run, nothing done$/);
    expect(sandbox.lifecycle.results(instanceId)).toEqual([]);
    expect(await listBackups(backups.s3, backups.store, 'prod')).toEqual([]);

    // What EventBridge Scheduler delivers for `rate(5 minutes)`: every cluster found by its tags.
    const scheduled = { version: '0', id: 'x', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012', time: new Date().toISOString(), region: 'us-east-1', resources: [], detail: {} };
    const run = await invoke(scheduled);
    expect(run.out.clusters).toEqual([expect.objectContaining({ cluster: 'prod', drift: 2, failed: 0 })]);
    expect(sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await listBackups(backups.s3, backups.store, 'prod')).toHaveLength(1);
    const drift = run.emf.find((e) => e.ReconcileDrift !== undefined);
    expect(drift).toMatchObject({ Cluster: 'prod', service: 'reconcile', ReconcileDrift: 2 });
    expect(run.emf.find((e) => e.FlowFailures !== undefined)).toMatchObject({ Cluster: 'prod', FlowFailures: 0 });

    const again = await invoke(scheduled);
    expect(again.out.clusters).toEqual([{ cluster: 'prod', drift: 0, failed: 0, summary: 'reconcile prod: in shape, nothing to do' }]);
    expect(again.emf.find((e) => e.ReconcileDrift !== undefined)).toMatchObject({ Cluster: 'prod', ReconcileDrift: 0 });
  });
});
