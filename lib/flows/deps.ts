/** What every flow receives: clients, host scripts, configuration, clock, and where to report. */
import type { Clock } from '../clock';
import type { Hosts } from '../host/commands';
import type { Alerter } from '../aws/alerts';
import type { AwaitingDr, HeldHooks } from '../aws/held-hooks';
import type { ClusterLock } from '../aws/lock';
import type { MemberIds } from '../aws/member-ids';
import type { Formation } from '../aws/formation';
import type { BackupStore } from '../aws/backups';
import type { BackupObjectsPort, LifecyclePort, MachinesPort, TargetActions, VolumeActions } from '../aws/ports';
import type { RunOptions } from '../aws/run-command';
import type { Progress } from './run';
import type { ObservePorts } from '../observe/ports';

export interface FlowTimings {
  /** SDK waiter / poll floor and ceiling in seconds (AWS: 2/15; sandbox: 0.25/0.5). */
  minDelaySec: number;
  maxDelaySec: number;
  /**
   * The SSM command poll (GetCommandInvocation), floor and ceiling in seconds. A host command
   * takes ~1–3 s on AWS (delivery ~1 s): with the waiters' 2 s floor each cost ~2.1 s, polled
   * every 0.5 s ~1.6 s; a jittered 0.5–2 s backoff gained nothing (docs/benchmarks.md, "under
   * the AWS latency profile"). A 0.5 s poll is 2 calls/s per running command.
   */
  commandMinDelaySec: number;
  commandMaxDelaySec: number;
  agentTimeoutSec: number;
  volumeTimeoutSec: number;
  /** How long a replacement waits for a retiring predecessor to release the volume. */
  predecessorTimeoutSec: number;
  lockTimeoutSec: number;
  /** How long to look for a healthy etcd peer (covers a leader election). */
  peerTimeoutSec: number;
  catchUpTimeoutSec: number;
  targetTimeoutSec: number;
  /** A learner or restarted member counts as caught up within this many raft entries of the leader. */
  maxRaftLag: number;
  /**
   * How long one retirement run waits for its turn to leave (another master out, no leader, or
   * quorum at stake) before it ends with the hook held; the reconciler re-drives it from there.
   */
  departureWaitSec: number;
  /**
   * How long the master of a new cluster (blank volume, no member answering, never formed) waits
   * for every slot's master to report its volume and for the seed to answer before it gives up
   * (its slot then awaits an operator, like a cluster without quorum).
   */
  bootstrapTimeoutSec: number;
}

export const AWS_TIMINGS: FlowTimings = {
  minDelaySec: 2, maxDelaySec: 15, commandMinDelaySec: 0.5, commandMaxDelaySec: 0.5, agentTimeoutSec: 300, volumeTimeoutSec: 120, predecessorTimeoutSec: 600,
  lockTimeoutSec: 300, peerTimeoutSec: 60, catchUpTimeoutSec: 300, targetTimeoutSec: 300, maxRaftLag: 100,
  departureWaitSec: 600, bootstrapTimeoutSec: 600,
};

/** `base` with the waiters' poll set to these; the SSM command poll never slower than it. */
export function withPoll(base: FlowTimings, minDelaySec: number, maxDelaySec: number): FlowTimings {
  return {
    ...base, minDelaySec, maxDelaySec,
    commandMinDelaySec: Math.min(base.commandMinDelaySec, minDelaySec), commandMaxDelaySec: Math.min(base.commandMaxDelaySec, maxDelaySec),
  };
}

export interface FlowDeps {
  /** The one observation's ports (lib/observe): what the flow judges the cluster from. */
  observe: ObservePorts;
  /** What a step reads of one instance it acts on (EC2 and Auto Scaling). */
  machines: MachinesPort;
  /** The slot's etcd volume: found, attached, detached. */
  volumes: VolumeActions;
  /** The API server target groups: registered, deregistered. */
  targets: TargetActions;
  /** Lifecycle hooks completed and kept alive; a slot's group. */
  lifecycle: LifecyclePort;
  lock: ClusterLock;
  /** Retirements holding their hook until leaving is safe. */
  held: HeldHooks;
  /** Slots brought in without quorum, awaiting disaster recovery. */
  awaitingDr: AwaitingDr;
  /** Which etcd member (by ID) each slot is. */
  memberIds: MemberIds;
  /** Whether the cluster was ever formed (the bootstrap fence); the slots' bootstrap reports. */
  formation: Formation;
  /** The backup objects: read, presigned, deleted (their listing is the observation's). */
  objects: BackupObjectsPort;
  /** The configured backup bucket: read before a new cluster is seeded (absent: never seeded). */
  bucket?: BackupStore;
  alerter: Alerter;
  /** Commands on the masters (lib/host/commands.ts): the flows' one way to a host. */
  hosts: Hosts;
  clock: Clock;
  tags: { cluster: string; member: string };
  timings: FlowTimings;
  /** One line per step for operators (structured logs in Lambda, progress lines in the demo). */
  progress: Progress;
  signal?: AbortSignal;
}

/**
 * What the cluster-wide host flows (backup, restore) receive: a slice of the one deps type (no
 * instances, volumes or hooks; their timings only the polls).
 */
export type HostFlowDeps = Pick<FlowDeps, 'objects' | 'hosts' | 'clock' | 'tags' | 'progress' | 'signal'>
  & { timings: Pick<FlowTimings, 'minDelaySec' | 'maxDelaySec' | 'commandMinDelaySec' | 'commandMaxDelaySec'> };

/** SSM Run Command settings for a host step that may run (and be waited for) up to `maxWaitSec`. */
export function hostRunOpts(d: Pick<HostFlowDeps, 'timings' | 'signal'>, maxWaitSec = 1800): RunOptions {
  return {
    minDelaySec: d.timings.commandMinDelaySec, maxDelaySec: d.timings.commandMaxDelaySec, maxWaitSec, executionTimeoutSec: maxWaitSec,
    ...(d.signal ? { abortSignal: d.signal } : {}),
  };
}
