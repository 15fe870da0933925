/**
 * What the emulated services see of the sandbox: exactly the members of Sandbox they read or
 * change, and the records they keep there (SSM invocations and faults). Sandbox satisfies it;
 * the services depend on this, not on Sandbox, so sandbox.ts can import them.
 */
import type { LatencyProfile } from '../latency';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { EC2Client, Volume } from '@aws-sdk/client-ec2';
import type { AsgModel } from '../asg-model';
import type { SandboxHost } from '../host';
import type { LifecycleModel } from '../lifecycle';

export interface Invocation {
  commandId: string;
  instanceId: string;
  documentName: string;
  commands: string[];
  status: 'Pending' | 'InProgress' | 'Success' | 'Failed' | 'TimedOut' | 'Cancelled';
  statusDetails: string;
  responseCode: number;
  stdout: string;
  stderr: string;
  requestedAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  done: Promise<void>;
}

/**
 * An SSM Run Command fault for the fault matrix, matched against the command's Comment (product
 * code writes `quorum-keeper <script> <subcommand>`), for the first `times` matching commands:
 *   undeliverable  never runs; ends TimedOut (DeliveryTimedOut), as when the agent is wedged
 *   lost-answer    runs to the end, but ends TimedOut (ExecutionTimedOut): the change happened
 *   failed         never runs; ends Failed with exit code 1
 */
export interface SsmFault {
  match: RegExp;
  outcome: 'undeliverable' | 'lost-answer' | 'failed';
  times: number;
}

export interface SandboxState {
  readonly dir: string;
  readonly lifecycle: LifecycleModel;
  readonly asgModel: AsgModel;
  /** Instances launched beside a group's current one (launch before terminate), by ID: their group and AZ. */
  readonly alongside: Map<string, { asg: string; az: string }>;
  /**
   * Each group's instance lifecycle policy (`TerminateHookAbandon`: retain | terminate), which
   * moto 5.2.1 accepts and drops; the sandbox keeps it and shows it in DescribeAutoScalingGroups.
   */
  readonly lifecyclePolicies: Map<string, string>;
  readonly hosts: Map<string, SandboxHost>;
  readonly invocations: Map<string, Invocation>;
  readonly detachCalls: Array<{ volumeId: string; instanceId: string; force: boolean }>;
  readonly s3Rejections: Array<{ url: string; reason: string }>;
  readonly stuckAttaching: Set<string>;
  /** How long AWS takes (sandbox/latency.ts). */
  readonly latency: LatencyProfile;
  /** When each target was last registered: key `<tg>|<id>|<port>` → epoch ms (NLB's initial state). */
  readonly registeredAt: Map<string, number>;
  /** How long after an attachment reads `attached` its /dev/disk/by-id link appears (udev). */
  readonly deviceDelayMs: (volumeId: string) => number;
  readonly ssmFaults: SsmFault[];
  readonly ssmInjected: Array<{ comment: string; outcome: SsmFault['outcome'] }>;
  readonly autoBoot: boolean;
  readonly commandStartDelayMs: number;
  readonly sendCommandLingerMs: number;
  /** Direct moto EC2 and ELBv2 access (not through the gateway). */
  readonly ec2: EC2Client;
  readonly elb: ElasticLoadBalancingV2Client;
  /** Targets draining after DeregisterTargets (moto drops them at once): key `<tg>|<id>|<port>` → until (epoch ms). */
  readonly draining: Map<string, number>;
  volumeDir(volumeId: string): string;
  bootHost(instanceId: string): Promise<SandboxHost>;
  syncDevices(): Promise<void>;
  describeVolume(volumeId: string): Promise<Volume | undefined>;
}
