/**
 * The sandbox scenario suites' common frame: one sandbox per test file, and per test a fresh
 * control plane (state table, alert topic), optionally the backup bucket, a 3-master cluster
 * `prod` holding `keys` keys under /registry/test/, and the continuous writer (issue 9).
 * Fields are filled by the jest hooks this registers; read them inside tests only.
 */
import { destroyClients, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl } from '../../sandbox/control';
import { putKeys } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import { type WriterKit, writerKit } from './writers';

export interface ScenarioWorld {
  sandbox: Sandbox;
  c: SandboxClients;
  ctl: Control;
  cluster: SandboxCluster;
  /** Only with `{ backups: true }`. */
  backups: BackupTarget;
  writer: WriterKit;
}

interface FrameOptions {
  /** Keys written under /registry/test/ (default none). */
  keys?: number;
  backups?: boolean;
  /** etcd member names when they differ from the slots' member tags. */
  etcdNames?: readonly string[];
  /** Sets the sandbox up before the cluster is provisioned (e.g. which etcd its masters carry). */
  prepare?: (sandbox: Sandbox) => void;
}

async function setUp(t: ScenarioWorld, opts: FrameOptions): Promise<void> {
  t.ctl = await provisionControl(t.sandbox);
  if (opts.backups) t.backups = await provisionBackups(t.sandbox);
  opts.prepare?.(t.sandbox);
  t.cluster = await provisionCluster(t.sandbox, t.c, { name: 'prod', ...(opts.etcdNames ? { etcdNames: opts.etcdNames } : {}) });
  if (opts.keys) await putKeys(t.cluster.members[1]!.clientUrl, '/registry/test/', opts.keys);
}

async function tearDown(t: ScenarioWorld, opts: FrameOptions): Promise<void> {
  await t.writer.stopAll();
  if (t.ctl) destroyControl(t.ctl);
  if (opts.backups && t.backups) destroyBackups(t.backups);
}

function world(): ScenarioWorld {
  const t = {} as ScenarioWorld;
  t.writer = writerKit(() => t.sandbox);
  return t;
}

async function startSandbox(t: ScenarioWorld): Promise<void> {
  t.sandbox = await Sandbox.start();
  t.c = sandboxClients(t.sandbox);
}

async function stopSandbox(t: ScenarioWorld): Promise<void> {
  t.writer.report();
  if (t.c) destroyClients(t.c);
  await t.sandbox?.stop();
}

/** Scenario suites: a fresh world (control plane, cluster, keys) for every test. */
export function freshClusterPerTest(opts: FrameOptions & { beforeEach?: () => void }): ScenarioWorld {
  const t = world();
  beforeAll(() => startSandbox(t));
  afterAll(() => stopSandbox(t));
  beforeEach(async () => {
    await t.sandbox.reset();
    await setUp(t, opts);
    opts.beforeEach?.();
  });
  afterEach(() => tearDown(t, opts));
  return t;
}

/** Entry-point suites (Lambda handlers): one world for the whole file; `ready` runs after it is up. */
export function oneClusterPerFile(opts: FrameOptions & { ready?: (t: ScenarioWorld) => Promise<void> }): ScenarioWorld {
  const t = world();
  beforeAll(async () => {
    await startSandbox(t);
    await setUp(t, opts);
    await opts.ready?.(t);
  });
  afterAll(async () => {
    await tearDown(t, opts);
    await stopSandbox(t);
  });
  return t;
}
