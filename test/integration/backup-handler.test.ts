/**
 * The backup Lambda entry (middy, Powertools logger + metrics, host scripts embedded as text)
 * against the sandbox: the composition root product code really runs with.
 */
import type { Context } from 'aws-lambda';
import { listBackups } from '../../lib/aws/backups';
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxLambdaEnv } from '../../sandbox/control';
import { clearFaults, slowSnapshots } from '../../sandbox/faults';
import { Sandbox, SANDBOX_REGION } from '../../sandbox/sandbox';
import { captureStdout, captureStream } from '../support/capture';
import { authorize, packagedRoles } from '../support/iam-eval';

jest.setTimeout(120_000);

const context = { getRemainingTimeInMillis: () => 900_000, functionName: 'backup', awsRequestId: 'test' } as unknown as Context;
type Handler = (event: unknown, ctx: Context) => Promise<{ clusters: Array<{ cluster: string; result: string; key?: string; error?: string }>; handedOff: string[] }>;

const scheduledEvent = {
  version: '0', id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa', 'detail-type': 'Scheduled Event', source: 'aws.events', account: '123456789012',
  time: '2026-11-25T12:00:00Z', region: 'us-east-1', resources: ['arn:aws:events:us-east-1:123456789012:rule/quorum-keeper-backup'], detail: {},
};

describe('backup handler', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let handler: Handler;
  let emitted: string[] = [];
  let restoreWrite: (() => void) | null = null;
  let slow: SandboxCluster | undefined;
  /** A second cluster, of one member (made by the first case that needs it). */
  const slowCluster = async (): Promise<SandboxCluster> => (slow ??= await provisionCluster(sandbox, c, { name: 'slow', size: 1 }));

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    ctl = await provisionControl(sandbox);
    b = await provisionBackups(sandbox);
    await provisionCluster(sandbox, c, { name: 'prod' });
    Object.assign(process.env, {
      ...sandboxLambdaEnv(sandbox, ctl),
      QK_BACKUP_BUCKET: b.store.bucket, QK_BACKUP_KMS_KEY_ID: b.kmsKeyArn,
    });
    handler = (await import('../../functions/backup')).handler;
    const captured = captureStdout();
    emitted = captured.lines;
    restoreWrite = captured.restore;
  });
  afterAll(async () => {
    restoreWrite?.();
    destroyBackups(b);
    destroyControl(ctl);
    destroyClients(c);
    await sandbox?.stop();
  });

  it('a scheduled event backs up every tagged cluster and publishes its metrics', async () => {
    const out = await handler(scheduledEvent, context);
    expect(out.clusters).toEqual([expect.objectContaining({ cluster: 'prod', result: 'uploaded' })]);
    expect((await listBackups(b.s3, b.store, 'prod')).map((o) => o.key)).toEqual([out.clusters[0]!.key]);
    const emf = emitted.filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(emf).toHaveLength(1);
    expect(emf[0]).toMatchObject({ Cluster: 'prod', BackupFailures: 0, BackupAgeSeconds: expect.any(Number) as number, BackupSizeBytes: expect.any(Number) as number });
  });

  it('a slow cluster does not hold up the others: clusters are backed up side by side, the answer in the order asked', async () => {
    const slow = await slowCluster();
    slowSnapshots(sandbox.host(slow.members[0]!.instanceId), 15);
    const before = new Set((await listBackups(b.s3, b.store, 'prod')).map((o) => o.key));
    const t0 = Date.now();
    let prodAt: number | null = null;
    const watching = (async () => {
      while (prodAt === null && Date.now() - t0 < 60_000) {
        if ((await listBackups(b.s3, b.store, 'prod')).some((o) => !before.has(o.key))) prodAt = Date.now() - t0;
        else await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const out = await handler({ clusters: ['slow', 'prod'] }, context);
    const total = Date.now() - t0;
    await watching;
    clearFaults(sandbox.host(slow.members[0]!.instanceId));
    expect(out.clusters.map((x) => [x.cluster, x.result])).toEqual([['slow', 'uploaded'], ['prod', 'uploaded']]);
    // prod's backup landed while slow's snapshot was still being taken (one after another it came after 15 s).
    expect({ prodAt, beforeSlowEnded: prodAt !== null && prodAt < 15_000, total: total >= 15_000 }).toEqual({ prodAt, beforeSlowEnded: true, total: true });
  });

  it('a scheduled run over two clusters hands each to its own invocation: it answers at once, a slow cluster holds up neither it nor the other; the role may invoke only itself', async () => {
    const fn = 'quorum-keeper-sandbox-backup';
    sandbox.lambda.register(fn, { handler: (e, ctx) => handler(e, ctx), maximumRetryAttempts: 0 });
    const slow = (await slowCluster()).members[0]!;
    slowSnapshots(sandbox.host(slow.instanceId), 10);
    const t0 = Date.now();
    const out = await handler(scheduledEvent, { ...context, functionName: fn });
    const answeredMs = Date.now() - t0;
    expect(out).toEqual({ clusters: [], handedOff: ['prod', 'slow'] });
    const clusterOf = (p: unknown) => (p as { clusters: string[] }).clusters[0]!;
    const runs = [...sandbox.lambda.runs].sort((x, y) => clusterOf(x.payload).localeCompare(clusterOf(y.payload))).map((r) => ({ r, ended: r.done.then((o) => ({ o, ms: Date.now() - t0 })) }));
    expect(runs.map(({ r }) => [r.functionName, r.type, r.payload])).toEqual([[fn, 'Event', { clusters: ['prod'] }], [fn, 'Event', { clusters: ['slow'] }]]);
    const [prod, slowRun] = await Promise.all(runs.map((x) => x.ended));
    clearFaults(sandbox.host(slow.instanceId));
    expect([prod!.o.result, slowRun!.o.result]).toMatchObject([{ clusters: [{ cluster: 'prod', result: 'uploaded' }] }, { clusters: [{ cluster: 'slow', result: 'uploaded' }] }]);
    // The scheduled invocation did not wait for either; prod's run ended while slow's snapshot was still being taken.
    expect({ answeredBeforeSlow: answeredMs < 5_000, prodBeforeSlow: prod!.ms < slowRun!.ms && prod!.ms < 10_000 }).toEqual({ answeredBeforeSlow: true, prodBeforeSlow: true });

    const arn = (name: string) => `arn:aws:lambda:${SANDBOX_REGION}:123456789012:function:${name}`;
    const roles = await packagedRoles({ clusters: 'prod,slow' }, { region: SANDBOX_REGION, account: '123456789012' }, {
      'BackupBucket.Arn': 'arn:aws:s3:::b', 'BackupBucket': 'b', 'StateTable.Arn': 'arn:aws:dynamodb:r:1:table/t', 'BackupKey.Arn': 'k', 'AlertKey.Arn': 'k',
      'AlertTopic': 'arn:aws:sns:r:1:t', 'NotifierDeadLetterQueue.Arn': 'arn:aws:sqs:r:1:q',
    });
    const invoke = (name: string) => ({ action: 'lambda:InvokeFunction', resource: arn(name), context: {} });
    expect([fn, 'quorum-keeper-sandbox-reconcile', 'quorum-keeper-sandbox-lifecycle'].map((name) => authorize(roles.BackupRole!, invoke(name)))).toEqual([true, false, false]);
  });

  it('a cluster that cannot be handed off (Lambda refuses the invoke) is run in this invocation, after an error line', async () => {
    const errors = captureStream(process.stderr);
    const out = await handler(scheduledEvent, { ...context, functionName: 'quorum-keeper-sandbox-not-deployed' }).finally(errors.restore);
    expect(out.handedOff).toEqual([]);
    expect(out.clusters.map((x) => [x.cluster, x.result])).toEqual([['prod', 'uploaded'], ['slow', 'uploaded']]);
    expect(errors.lines.filter((l) => l.includes('could not hand prod to its own invocation of quorum-keeper-sandbox-not-deployed (Function not found')).length).toBe(1);
  });

  it('refuses a malformed request before touching anything', async () => {
    await expect(handler({ clusters: ['prod; reboot'] }, context)).rejects.toThrow(/invalid backup request: clusters.0: must be a cluster name/);
    await expect(handler({ clusters: [] }, context)).rejects.toThrow(/invalid backup request/);
  });
});
