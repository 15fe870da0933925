/**
 * The one composition root. Every Lambda, the CLI and the sandbox build their flows'
 * dependencies here, from the same parts: clients (built on first use), the host scripts, the
 * tags, the timings, the clock, where progress goes, the state table (locks, alert
 * de-duplication, what probes and reconciler runs remember) and the alert topic. Each flow gets
 * a narrow view of it (`flowDeps`, `backupDeps`, …), so a flow sees only what it uses, and a
 * Lambda builds only the clients its flow touches.
 *
 * Layering: functions / cli / sandbox → compose → flows → domain, aws, etcd, notify, host.
 */
import { type Alerter, snsAlerter } from './aws/alerts';
import type { AwsClients } from './aws/clients';
import { type AwaitingDr, dynamoAwaitingDr, dynamoHeldHooks, type HeldHooks } from './aws/held-hooks';
import { ClusterLock } from './aws/lock';
import { dynamoProbeMemory, type ProbeMemoryStore } from './aws/probe-memory';
import { dynamoReconcileMemory, type ReconcileMemory } from './aws/reconcile-memory';
import { dynamoMemberIds, type MemberIds } from './aws/member-ids';
import { dynamoFormation, type Formation } from './aws/formation';
import { dynamoRestoreJournal, type RestoreJournal } from './aws/restore-journal';
import { ServerClock } from './aws/server-clock';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { type Clock, systemClock } from './clock';
import type { HostScriptBundle } from './host/command';
import type { Hosts } from './host/commands';
import { ssmHosts } from './aws/hosts';
import type { BackupStore } from './aws/backups';
import type { BackupDeps, BackupSettings } from './flows/backup';
import type { FlowDeps, FlowTimings, HostFlowDeps } from './flows/deps';
import type { ProbeDeps, ProbePorts } from './flows/probe';
import type { ReconcileDeps, ReconcileReadDeps } from './flows/reconcile';
import { withLockView } from './flows/reconcile';
import type { RestoreDeps } from './flows/restore';
import type { AdoptDeps } from './flows/adopt';
import type { Progress } from './flows/run';
import type { StatusDeps } from './flows/status';
import type { DoctorClients } from './aws/doctor-clients';
import type { DoctorDeps } from './flows/doctor';
import type { RecoverySettings } from './domain/recovery';
import { backupObjectsPort, lifecyclePort, machinesPort, targetActions, volumeActions } from './aws/ports';
import { awsObservePorts, backupsPort, etcdPort, fleetPort, hostsReadPort, volumesPort } from './observe/aws-ports';
import type { ObservePorts } from './observe/ports';
import { hostRunOpts } from './flows/deps';

export interface RootOptions {
  clients: AwsClients;
  scripts: HostScriptBundle;
  tags: { cluster: string; member: string; served?: readonly string[] };
  timings: FlowTimings;
  progress?: Progress;
  clock?: Clock;
  /** The deployment's state table: locks, alert de-duplication, probe and reconciler memory. */
  stateTable?: string | undefined;
  /** Alerts go to this SNS topic (de-duplicated in the state table)... */
  alertTopicArn?: string | undefined;
  /** ...unless an alerter is given (the CLI without a topic prints alerts). */
  alerter?: Alerter;
  /** The backup bucket, which the replacement reads before it seeds a new cluster (none is seeded without it). */
  backupStore?: BackupStore | undefined;
}

export interface Root {
  readonly clients: AwsClients;
  readonly scripts: HostScriptBundle;
  readonly tags: { cluster: string; member: string; served?: readonly string[] };
  readonly timings: FlowTimings;
  readonly backupStore: BackupStore | undefined;
  readonly progress: Progress;
  readonly clock: Clock;
  /** Whether a state table was given (locks and memory exist). */
  readonly hasState: boolean;
  readonly lock: ClusterLock;
  readonly held: HeldHooks;
  readonly awaitingDr: AwaitingDr;
  readonly memberIds: MemberIds;
  /** Whether each cluster was ever formed (the bootstrap fence), and the slots' bootstrap reports. */
  readonly formation: Formation;
  readonly restoreJournal: RestoreJournal;
  readonly alerter: Alerter;
  readonly probeMemory: ProbeMemoryStore;
  readonly reconcileMemory: ReconcileMemory;
}

/** Builds on first use, once. */
function once<T>(make: () => T): () => T {
  let v: { value: T } | undefined;
  return () => (v ??= { value: make() }).value;
}

/** `c` with every client, when first used, watched by `clock` for the server's time. */
function watched(c: AwsClients, clock: ServerClock): AwsClients {
  const seen = new WeakSet<object>();
  const out = {} as AwsClients;
  for (const name of ['ec2', 'asg', 'ssm', 'elb', 'ddb', 'sns', 's3'] as const) {
    Object.defineProperty(out, name, {
      enumerable: true,
      get: () => {
        const client = c[name];
        if (!seen.has(client)) {
          seen.add(client);
          clock.watch(client);
        }
        return client;
      },
    });
  }
  return out;
}

export function compose(o: RootOptions): Root {
  // Time from AWS for every timestamp other machines compare (locks, backup keys, ages); the
  // caller's own clock for durations. Learnt from the responses of the clients used; before the
  // first one, from one small DescribeAutoScalingGroups every role may make.
  const clients: AwsClients = o.clients;
  const clock = new ServerClock(o.clock ?? systemClock, () => watchedClients.asg.send(new DescribeAutoScalingGroupsCommand({ MaxRecords: 1, Filters: [{ Name: 'tag-key', Values: [o.tags.cluster] }] })));
  const watchedClients = watched(clients, clock);
  const table = (): string => {
    if (!o.stateTable) throw new Error('no state table configured: locks, alert de-duplication and memory need one');
    return o.stateTable;
  };
  const lock = once(() => new ClusterLock(watchedClients.ddb, clock, { table: table() }));
  const alerter = once((): Alerter => {
    if (o.alerter) return o.alerter;
    if (!o.alertTopicArn) throw new Error('no alert topic configured');
    return snsAlerter(watchedClients.sns, o.alertTopicArn, lock());
  });
  const probeMemory = once(() => dynamoProbeMemory(watchedClients.ddb, table(), clock));
  const reconcileMemory = once(() => dynamoReconcileMemory(watchedClients.ddb, table(), clock));
  const held = once(() => dynamoHeldHooks(watchedClients.ddb, table(), clock));
  const awaitingDr = once(() => dynamoAwaitingDr(watchedClients.ddb, table(), clock));
  const memberIds = once(() => dynamoMemberIds(watchedClients.ddb, table(), clock));
  const formation = once(() => dynamoFormation(watchedClients.ddb, table(), clock));
  const restoreJournal = once(() => dynamoRestoreJournal(watchedClients.ddb, table(), clock));
  return {
    clients: watchedClients, scripts: o.scripts, tags: o.tags, timings: o.timings, backupStore: o.backupStore, progress: o.progress ?? (() => undefined), clock,
    hasState: Boolean(o.stateTable),
    get lock() { return lock(); },
    get held() { return held(); },
    get awaitingDr() { return awaitingDr(); },
    get memberIds() { return memberIds(); },
    get formation() { return formation(); },
    get restoreJournal() { return restoreJournal(); },
    get alerter() { return alerter(); },
    get probeMemory() { return probeMemory(); },
    get reconcileMemory() { return reconcileMemory(); },
  };
}

/** The host port over the root's SSM client (built when first used). */
export function hostsOf(r: Root): Hosts {
  return ssmHosts(() => r.clients.ssm, r.scripts);
}

/** What the host-side cluster flows (backup, restore) see. */
function hostFlowDeps(r: Root): HostFlowDeps {
  return { objects: backupObjectsPort(() => r.clients.s3), hosts: hostsOf(r), clock: r.clock, tags: r.tags, timings: r.timings, progress: r.progress };
}

/** The lifecycle flows (replacement, retirement). */
export function flowDeps(r: Root): FlowDeps {
  const ec2 = () => r.clients.ec2;
  const asg = () => r.clients.asg;
  return {
    observe: observePorts(r), machines: machinesPort(ec2, asg), volumes: volumeActions(ec2, r.tags), targets: targetActions(() => r.clients.elb, r.tags), lifecycle: lifecyclePort(asg), lock: r.lock, held: r.held, awaitingDr: r.awaitingDr, memberIds: r.memberIds, formation: r.formation, alerter: r.alerter, hosts: hostsOf(r), clock: r.clock, tags: r.tags, timings: r.timings, progress: r.progress,
    objects: backupObjectsPort(() => r.clients.s3), ...(r.backupStore ? { bucket: r.backupStore } : {}),
  };
}

/** `alerter` defaults to the root's (the CLI prints a backup's alerts instead). */
export function backupDeps(r: Root, alerter: Alerter = r.alerter): BackupDeps {
  // The member IDs recorded per slot tell the source's slot by identity (names need not be tags).
  return { ...hostFlowDeps(r), observe: { ...etcdPorts(r), backups: backupsPort(() => r.clients.s3) }, alerter };
}

export function restoreDeps(r: Root): RestoreDeps {
  return {
    ...hostFlowDeps(r), observe: { ...etcdPorts(r), backups: backupsPort(() => r.clients.s3), volumes: volumesPort(() => r.clients.ec2, r.tags), hosts: hostsReadPort(hostsOf(r), hostRunOpts(r, 120)) }, targets: targetActions(() => r.clients.elb, r.tags),
    ...(r.hasState ? { awaitingDr: r.awaitingDr, memberIds: r.memberIds, lock: r.lock, journal: r.restoreJournal } : {}),
  };
}

export function probeDeps(r: Root): ProbeDeps {
  return { observe: etcdPorts(r), clock: r.clock, timings: r.timings, memory: r.probeMemory };
}

/** The state table's records as the observation reads them (none without a state table). */
function recordsOf(r: Root): Partial<Pick<ObservePorts, 'records'>> {
  return r.hasState ? {
    records: {
      memberIds: (cluster, slots) => r.memberIds.get(cluster, slots),
      held: (cluster, member) => r.held.get(cluster, member),
      awaitingDr: (cluster, member) => r.awaitingDr.get(cluster, member),
      highestRevision: async (cluster) => (await r.probeMemory.get(cluster))?.highestRevision ?? null,
    },
  } : {};
}

/** The one observation's ports (lib/observe) over the root's clients (each built when first used); with a state table, its records too. */
export function observePorts(r: Root): ObservePorts {
  return {
    ...awsObservePorts({
      asg: () => r.clients.asg, ec2: () => r.clients.ec2, elb: () => r.clients.elb, ssm: () => r.clients.ssm, s3: () => r.clients.s3, scripts: r.scripts, tags: r.tags, runOpts: hostRunOpts(r, 60), hosts: hostsOf(r),
    }),
    ...recordsOf(r),
  };
}

/** Only the slots and etcd (and the records): the probe's and the backup's, whose functions carry no EC2, load balancer or S3 listing code. */
function etcdPorts(r: Root): ProbePorts {
  return { fleet: fleetPort(() => r.clients.asg, r.tags), etcd: etcdPort(() => r.clients.ssm, r.scripts, hostRunOpts(r, 60)), ...recordsOf(r) };
}

export function statusDeps(r: Root): StatusDeps & { s3: Root['clients']['s3'] } {
  return { observe: observePorts(r), clock: r.clock, get s3() { return r.clients.s3; } };
}

/**
 * The reconciler's read; with a state table it also sees the locks and what earlier runs
 * remembered; with `recovery` (each cluster's settings) it judges quorum loss too.
 */
export function planDeps(r: Root, recovery?: (cluster: string) => RecoverySettings): ReconcileReadDeps {
  const observe = observePorts(r);
  const base: ReconcileReadDeps = {
    observe, clock: r.clock,
    ...(recovery ? { recovery: { read: { observe, clock: r.clock, objects: backupObjectsPort(() => r.clients.s3), ...(r.hasState ? { journal: r.restoreJournal } : {}) }, settings: recovery } } : {}),
  };
  return r.hasState ? withLockView(base, r.lock, r.reconcileMemory) : base;
}

/** The reconciler; with backup settings it judges and takes backups too. */
export function reconcileDeps(r: Root, backup?: BackupSettings): ReconcileDeps {
  return { ...flowDeps(r), memory: r.reconcileMemory, ...(backup ? { backup: { settings: backup } } : {}) };
}

/** `adopt`: the lifecycle flows' clients, locks and records, without alerts or the load balancer. Needs the state table. */
export function adoptDeps(r: Root): AdoptDeps {
  return {
    lock: r.lock, memberIds: r.memberIds, formation: r.formation, hosts: hostsOf(r), clock: r.clock, tags: r.tags, timings: r.timings, progress: r.progress,
    observe: { fleet: fleetPort(() => r.clients.asg, r.tags), volumes: volumesPort(() => r.clients.ec2, r.tags), etcd: etcdPort(() => r.clients.ssm, r.scripts, hostRunOpts(r, 120)) },
  };
}

/** `doctor`: status's clients and recorded member IDs, plus KMS, CloudFormation, EventBridge and Lambda (the backup key, the stack). */
export function doctorDeps(r: Root, extra: DoctorClients): DoctorDeps {
  const { asg, ec2, elb, ssm, s3 } = r.clients;
  const { kms, cfn, events, lambda } = extra;
  return {
    asg, ec2, elb, ssm, s3, kms, cfn, events, lambda, hosts: hostsOf(r), clock: r.clock, tags: r.tags, timings: r.timings,
    etcd: etcdPort(() => r.clients.ssm, r.scripts, hostRunOpts(r, 60)),
    ...(r.hasState ? { recordedIds: (cluster: string, slots: readonly string[]) => r.memberIds.get(cluster, slots) } : {}),
  };
}
