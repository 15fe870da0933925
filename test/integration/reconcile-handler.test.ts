/**
 * The reconcile Lambda entry (middy + Powertools, host scripts embedded as text) against the
 * sandbox: request validation, dry run, one summary line and the drift metric per cluster.
 */
import type { Context } from 'aws-lambda';
import { listBackups } from '../../lib/aws/backups';
import { sandboxLambdaEnv } from '../../sandbox/control';
import { killMaster, memberOf } from '../../sandbox/scenario';
import { captureStdout } from '../support/capture';
import { oneClusterPerFile } from '../support/scenario-suite';

jest.setTimeout(180_000);

const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'reconcile', awsRequestId: 'test' } as unknown as Context;
type RunResult = { clusters: Array<{ cluster: string; drift: number | null; summary: string; failed: number; error?: string }> };
type Handler = (event: unknown, ctx: Context) => Promise<RunResult>;
type Emf = Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } };

describe('reconcile handler', () => {
  let handler: Handler;
  const t = oneClusterPerFile({
    backups: true,
    ready: async (w) => {
      Object.assign(process.env, sandboxLambdaEnv(w.sandbox, w.ctl), { QK_BACKUP_BUCKET: w.backups.store.bucket, QK_RECONCILE_PENDING_GRACE_SEC: '0' });
      handler = (await import('../../functions/reconcile')).handler;
    },
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
    const w = t.writer.start('reconcile-handler');
    const { instanceId } = await killMaster(t.sandbox, t.c, memberOf(t.cluster, 'etcd-c')); // launch event lost

    const dry = await invoke({ clusters: ['prod'], dryRun: true });
    expect(dry.out.clusters).toEqual([expect.objectContaining({ cluster: 'prod', drift: 2, failed: 0 })]);
    expect(dry.out.clusters[0]!.summary).toMatch(/^reconcile prod: drift 2; found: re-drive the replacement of etcd-c .*take a backup \(there is no backup\).*; did: dry run, nothing done(; noted: .*)?$/); // a killed leader can leave transient notes
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual([]);
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toEqual([]);

    // What EventBridge Scheduler delivers for `rate(5 minutes)`: every cluster found by its tags.
    const scheduled = { version: '0', id: 'x', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012', time: new Date().toISOString(), region: 'us-east-1', resources: [], detail: {} };
    const run = await invoke(scheduled);
    expect(run.out.clusters).toEqual([expect.objectContaining({ cluster: 'prod', drift: 2, failed: 0 })]);
    expect(t.sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await listBackups(t.backups.s3, t.backups.store, 'prod')).toHaveLength(1);
    const drift = run.emf.find((e) => e.ReconcileDrift !== undefined);
    expect(drift).toMatchObject({ Cluster: 'prod', service: 'reconcile', ReconcileDrift: 2 });
    expect(run.emf.find((e) => e.FlowFailures !== undefined)).toMatchObject({ Cluster: 'prod', FlowFailures: 0 });

    const again = await invoke(scheduled);
    expect(again.out.clusters).toEqual([{ cluster: 'prod', drift: 0, failed: 0, summary: 'reconcile prod: in shape, nothing to do' }]);
    expect(again.emf.find((e) => e.ReconcileDrift !== undefined)).toMatchObject({ Cluster: 'prod', ReconcileDrift: 0 });
    await t.writer.check(w, 'lost launch event, re-driven through the reconcile Lambda');
  });
});
