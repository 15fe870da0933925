/** The continuous acknowledged-writes checker itself, on a real 3-member etcd cluster. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { AckWriter, formatReport } from '../../sandbox/writer';
import { EtcdTestCluster } from '../support/etcd-cluster';

jest.setTimeout(60_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('AckWriter', () => {
  let cluster: EtcdTestCluster;
  beforeEach(async () => {
    cluster = await EtcdTestCluster.start(3);
  });
  afterEach(async () => {
    await cluster?.destroy();
  });

  it('acknowledges every write on a healthy cluster and finds them all', async () => {
    const w = new AckWriter(() => cluster.endpoints, { prefix: '/qk-writer/healthy/' }).start();
    await sleep(1500);
    const r = await w.verify();
    expect(r.acknowledged).toBeGreaterThan(40);
    expect(r).toMatchObject({ failed: 0, unknown: 0, acknowledgedButMissing: 0 });
    expect(r.longestGapMs).toBeLessThan(1000);
  });

  it('catches a loss: acknowledged writes removed behind its back are reported missing', async () => {
    const w = new AckWriter(() => cluster.endpoints, { prefix: '/qk-writer/loss/' }).start();
    await sleep(1000);
    await w.stop();
    // Like restoring an older snapshot without telling the checker: some acknowledged keys vanish.
    execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.endpoints.join(',')}`, 'del', w.key(3)], { env: { PATH: process.env.PATH } });
    execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.endpoints.join(',')}`, 'del', w.key(7)], { env: { PATH: process.env.PATH } });
    const r = await w.verify();
    expect(r.acknowledgedButMissing).toBe(2);
    expect(r.missingSeqs).toEqual([3, 7]);
    expect(formatReport(r)).toMatch(/lost \(acknowledged but missing\): 2/);
  });

  it('keeps writing through a member crash, and measures the gap when quorum is gone', async () => {
    const w = new AckWriter(() => cluster.endpoints, { prefix: '/qk-writer/outage/', writeDeadlineMs: 1000 }).start();
    await sleep(500);
    cluster.kill('etcd-a');
    await sleep(1000);
    cluster.kill('etcd-b');
    await sleep(2500);
    cluster.start('etcd-a');
    cluster.start('etcd-b');
    await cluster.waitHealthy();
    await sleep(1000);
    const r = await w.verify();
    expect(r.acknowledgedButMissing).toBe(0);
    expect(r.failed + r.unknown).toBeGreaterThan(0);
    expect(r.longestGapMs).toBeGreaterThan(2000);
  });

  it('catches the loss when an older snapshot is restored behind its back; with the revision it counts them as discarded', async () => {
    const w = new AckWriter(() => cluster.endpoints, { prefix: '/qk-writer/restore/', writeDeadlineMs: 1000 }).start();
    await sleep(800);
    const snap = join(cluster.dir, 'older.db');
    execFileSync('etcdctl', [...cluster.etcdctlFlags, `--endpoints=${cluster.endpoints[0]}`, 'snapshot', 'save', snap], { env: { PATH: process.env.PATH }, stdio: 'ignore' });
    const revision = Number(/"revision":(\d+)/.exec(execFileSync('etcdctl', ['snapshot', 'status', snap, '-w', 'json'], { encoding: 'utf8', env: { PATH: process.env.PATH } }))![1]);
    await sleep(800);
    await w.stop();
    await cluster.restoreAll(snap);
    const blind = await w.verify();
    expect(blind.acknowledgedButMissing).toBeGreaterThan(0);
    const informed = await w.verify(cluster.endpoints, { upToRevision: revision });
    expect(informed.acknowledgedButMissing).toBe(0);
    expect(informed.discardedAfterRevision).toBe(blind.acknowledgedButMissing);
    expect(formatReport(informed)).toMatch(/discarded by the restore \(newer than the snapshot\): \d+/);
  });
});

