/**
 * The disaster-recovery suites' sandbox (restore.test.ts, recovery.test.ts): one sandbox per
 * file, and per test a fresh state table, backup bucket and 3-master cluster holding 3,000 keys
 * under /registry/bulk/. Registers the hooks; returns the test's world through getters.
 */
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import {
  type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxBackupDeps, sandboxRestoreDeps,
} from '../../sandbox/control';
import { putKeysBulk } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import type { AckWriter } from '../../sandbox/writer';

export interface DrWorld {
  readonly sandbox: Sandbox;
  readonly c: SandboxClients;
  readonly ctl: Control;
  readonly b: BackupTarget;
  readonly cluster: SandboxCluster;
  /** Progress lines of the flows run through `deps`/`rdeps` (cleared per test). */
  readonly steps: string[];
  /** A writer the test started: stopped after it. */
  writer: AckWriter | null;
  readonly deps: () => ReturnType<typeof sandboxBackupDeps>;
  readonly rdeps: () => ReturnType<typeof sandboxRestoreDeps>;
  readonly record: (e: { step: string; status: string; detail: string }) => void;
}

export function useDrSandbox(): DrWorld {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let b: BackupTarget;
  let cluster: SandboxCluster;
  const steps: string[] = [];
  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    destroyClients(c);
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    ctl = await provisionControl(sandbox);
    b = await provisionBackups(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/bulk/', 3_000);
    steps.length = 0;
  });
  const w: DrWorld = {
    get sandbox() { return sandbox; },
    get c() { return c; },
    get ctl() { return ctl; },
    get b() { return b; },
    get cluster() { return cluster; },
    steps,
    writer: null,
    record: (e) => { steps.push(`${e.step}:${e.status} ${e.detail}`); },
    deps: () => sandboxBackupDeps(c, ctl, b, w.record),
    rdeps: () => sandboxRestoreDeps(c, ctl, b, w.record),
  };
  afterEach(async () => {
    await w.writer?.stop();
    w.writer = null;
    destroyControl(ctl);
    destroyBackups(b);
  });
  return w;
}
