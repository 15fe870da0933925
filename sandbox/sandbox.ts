/**
 * The local sandbox AWS: ONE endpoint that the real AWS SDK v3 clients talk to. Its gateway
 * (gateway.ts) forwards every request to moto_server; the emulated services (services/) fill
 * the gaps moto 5.2.1 has (measured, see TOOLING.md):
 *
 *   ssm  SendCommand            moto records it; the sandbox really runs the commands on the
 *                               target sandbox host (sh -c, like the SSM agent)
 *   ssm  GetCommandInvocation / ListCommandInvocations   real status, exit code, output
 *   ssm  DescribeInstanceInformation                     agent state of each sandbox host
 *   autoscaling CompleteLifecycleAction / RecordLifecycleActionHeartbeat   modelled + recorded;
 *               actions expire into their hook's DefaultResult; terminations, launches and
 *               instance refreshes wait for their hooks (asg-model.ts)
 *   elbv2 DescribeTargetHealth  moto's answer, with each target's state set from its host's
 *                               apiserver /readyz
 *   ec2  AttachVolume / DetachVolume   moto's answer; the volume's directory appears in / leaves
 *                               the host's /dev/disk/by-id
 *   s3   PutObject              refuses a body whose SHA-256 differs from x-amz-checksum-sha256
 *                               (BadDigest), as S3 does; moto does not check
 *
 * This file holds the sandbox's state and its start / stop / reset.
 * Product code never knows: it only receives an endpoint URL and credentials.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, type Volume } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { AsgModel } from './asg-model';
import { closeEtcdAgents } from './etcd-http';
import { type ApiFault, Gateway, type InjectedApiFault } from './gateway';
import { type EtcdScheme, SandboxHost } from './host';
import { SandboxPki } from './pki';
import { type LatencyProfile, SANDBOX_LATENCY } from './latency';
import { LifecycleModel } from './lifecycle';
import { MotoServer } from './moto';
import { makeTempDir, removeDir } from './procs';
import type { Handler } from './protocol';
import { autoscalingRoutes } from './services/autoscaling';
import { ec2Routes, syncDevices } from './services/ec2';
import { elbv2Routes } from './services/elbv2';
import { refuseBadDigest } from './services/s3';
import { LambdaModel, lambdaRoutes } from './services/lambda';
import { ssmRoutes } from './services/ssm';
import type { Invocation, SandboxState, SsmFault } from './services/state';

export type { ApiFault } from './gateway';
export type { Invocation, SandboxState, SsmFault } from './services/state';

export const SANDBOX_REGION = 'us-east-1';

export interface AwsClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken: string };
  forcePathStyle: boolean;
}

/**
 * A session token the size Lambda's role credentials carry (~1,400 characters here; STS makes no
 * promise: "typically less than 4096 bytes", AWS STS API Reference, Credentials). Every sandbox
 * client signs with it, as a Lambda does, so presigned URLs carry X-Amz-Security-Token and are
 * as long as on AWS. Base64, with the '+', '/' and '=' real tokens have.
 */
export const SANDBOX_SESSION_TOKEN = (() => {
  let t = 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ';
  for (let i = 0; t.length < 1400; i++) t += createHash('sha256').update(`sandbox-token-${i}`).digest('base64');
  return t.slice(0, 1396) + 'Aw==';
})();

export class Sandbox implements SandboxState {
  readonly lifecycle = new LifecycleModel();
  /** Lambda's Invoke for the functions a test registers (the scheduled functions' hand-off). */
  readonly lambda = new LambdaModel(() => this.latency.asyncInvokeMs);
  readonly hosts = new Map<string, SandboxHost>();
  readonly invocations = new Map<string, Invocation>();
  /** Every DetachVolume the sandbox forwarded, with its Force flag (safety assertions). */
  readonly detachCalls: Array<{ volumeId: string; instanceId: string; force: boolean }> = [];
  /** S3 uploads the sandbox refused the way S3 would (checksum mismatch). */
  readonly s3Rejections: Array<{ url: string; reason: string }> = [];
  /** Volumes whose attachment never completes (EC2 shows `attaching`; no device appears). */
  readonly stuckAttaching = new Set<string>();
  /**
   * How long after an attachment reads `attached` the NVMe /dev/disk/by-id link appears: udev
   * creates it once the kernel has probed the device, which EC2's `attached` does not wait for
   * ("the device name you specify ... might be different"; NVMe links are made by udev:
   * https://docs.aws.amazon.com/ebs/latest/userguide/nvme-ebs-volumes.html). 0–5 s, at random.
   */
  deviceDelayMs: (volumeId: string) => number = SANDBOX_LATENCY.deviceMs;
  /** How long AWS takes (sandbox/latency.ts): `useLatency(AWS_LATENCY)` for AWS's typical figures; kept across reset(). */
  latency: LatencyProfile = SANDBOX_LATENCY;
  readonly registeredAt = new Map<string, number>();
  readonly ssmFaults: SsmFault[] = [];
  readonly ssmInjected: Array<{ comment: string; outcome: SsmFault['outcome'] }> = [];
  /**
   * How masters booted from now on run etcd: `https` — mutual TLS on client and peer URLs, with
   * per-host certificates from this process's CA (sandbox/pki.ts), as every production cluster —
   * or `http`, only for a test that says why.
   */
  etcdScheme: EtcdScheme = 'https';
  /**
   * The etcd that masters booted from now on carry (their AMI's: `QK_BIN_DIR` for the host
   * scripts); null: whatever etcd is first on PATH. A rolling upgrade boots replacements from a
   * newer one (sandbox/etcd-bin.ts `etcdBinDirs`).
   */
  etcdBinDir: string | null = null;
  /** Boot a host (and its SSM agent) for every running moto instance on first sight. */
  autoBoot = true;
  /** Extra delay before a command starts running (models SSM delivery latency). */
  commandStartDelayMs = 0;
  /**
   * SendCommand answers once the command has finished or this much time has passed, so the
   * SDK waiter's first poll usually sees the final status (saves a poll interval per command
   * in tests; product code cannot tell, it polls either way).
   */
  sendCommandLingerMs = 3000;
  readonly endpoint: string;
  private readonly motoEc2: EC2Client;
  /** Direct moto ELBv2 access (target group attributes). */
  readonly elb: ElasticLoadBalancingV2Client;
  readonly draining = new Map<string, number>();
  /** Terminations, launches and instance refreshes through the lifecycle hooks. */
  readonly asgModel: AsgModel;
  readonly alongside = new Map<string, { asg: string; az: string }>();
  readonly lifecyclePolicies = new Map<string, string>();
  private readonly motoAsg: AutoScalingClient;
  private booting = new Map<string, Promise<SandboxHost>>();

  private constructor(
    readonly dir: string,
    readonly moto: MotoServer,
    private readonly gateway: Gateway,
  ) {
    this.endpoint = gateway.endpoint;
    this.motoEc2 = new EC2Client(this.motoConfig());
    this.elb = new ElasticLoadBalancingV2Client(this.motoConfig());
    this.motoAsg = new AutoScalingClient(this.motoConfig());
    this.asgModel = new AsgModel(this.lifecycle, this.motoAsg, this.motoEc2, this.hosts);
    const forward: Handler = (r) => gateway.forward(r);
    gateway.serve({
      routes: { ...ssmRoutes(this, forward), ...autoscalingRoutes(this, forward), ...elbv2Routes(this, forward), ...ec2Routes(this, forward), ...lambdaRoutes(this.lambda, forward) },
      unrouted: async (r) => refuseBadDigest(this, r) ?? await forward(r),
    });
  }

  static async start(opts: { moto?: MotoServer } = {}): Promise<Sandbox> {
    const moto = opts.moto ?? (await MotoServer.start());
    await SandboxPki.get();
    const dir = makeTempDir('world');
    return new Sandbox(dir, moto, await Gateway.start(moto.url));
  }

  /** Faults to inject (see ApiFault), and every fault injected so far (the gateway injects them). */
  get apiFaults(): ApiFault[] {
    return this.gateway.apiFaults;
  }

  get injected(): InjectedApiFault[] {
    return this.gateway.injected;
  }

  /** Configuration for real SDK clients: product code gets exactly this and nothing else. */
  clientConfig(): AwsClientConfig {
    return {
      endpoint: this.endpoint,
      region: SANDBOX_REGION,
      credentials: { accessKeyId: 'sandbox', secretAccessKey: 'sandbox', sessionToken: SANDBOX_SESSION_TOKEN },
      forcePathStyle: true,
    };
  }

  private motoConfig(): AwsClientConfig {
    return { ...this.clientConfig(), endpoint: this.moto.url };
  }

  volumeDir(volumeId: string): string {
    const dir = join(this.dir, 'volumes', volumeId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  host(instanceId: string): SandboxHost {
    const h = this.hosts.get(instanceId);
    if (!h) throw new Error(`no sandbox host for ${instanceId}`);
    return h;
  }

  /** From now on, AWS takes this long (SSM delivery, attachment, boot, target registration). */
  useLatency(p: LatencyProfile): void {
    this.latency = p;
    this.commandStartDelayMs = p.commandStartMs;
    this.sendCommandLingerMs = p.sendCommandLingerMs;
    this.deviceDelayMs = p.deviceMs;
  }

  async bootHost(instanceId: string): Promise<SandboxHost> {
    const existing = this.hosts.get(instanceId);
    if (existing) return existing;
    let p = this.booting.get(instanceId);
    if (!p) {
      p = SandboxHost.boot(instanceId, join(this.dir, 'hosts', instanceId), { scheme: this.etcdScheme, binDir: this.etcdBinDir }).then((h) => {
        h.agentReadyAt = Date.now() + this.latency.agentOnlineMs;
        this.hosts.set(instanceId, h);
        return h;
      });
      this.booting.set(instanceId, p);
    }
    return p;
  }

  /** Stops every host's etcd and apiserver and forgets all state (moto included). */
  async reset(): Promise<void> {
    await this.lambda.clear();
    await Promise.all([...this.invocations.values()].map((i) => i.done));
    await Promise.all([...this.hosts.values()].map((h) => h.shutdown()));
    this.hosts.clear();
    this.booting.clear();
    this.invocations.clear();
    this.lifecycle.clear();
    this.asgModel.clear();
    this.alongside.clear();
    this.lifecyclePolicies.clear();
    this.detachCalls.length = 0;
    this.s3Rejections.length = 0;
    this.stuckAttaching.clear();
    this.draining.clear();
    this.etcdScheme = 'https';
    this.etcdBinDir = null;
    this.deviceDelayMs = this.latency.deviceMs;
    this.registeredAt.clear();
    this.gateway.clearFaults();
    this.ssmFaults.length = 0;
    this.ssmInjected.length = 0;
    rmSync(join(this.dir, 'hosts'), { recursive: true, force: true });
    rmSync(join(this.dir, 'volumes'), { recursive: true, force: true });
    await this.moto.reset();
  }

  async stop(opts: { keepMoto?: boolean } = {}): Promise<void> {
    await this.lambda.clear();
    await Promise.all([...this.invocations.values()].map((i) => i.done));
    await Promise.all([...this.hosts.values()].map((h) => h.shutdown()));
    await this.gateway.close();
    this.asgModel.close();
    this.motoAsg.destroy();
    this.motoEc2.destroy();
    this.elb.destroy();
    if (!opts.keepMoto) await this.moto.stop();
    await closeEtcdAgents();
    if (!process.env.QK_KEEP_TMP) removeDir(this.dir);
  }

  /** Makes each host's /dev/disk/by-id match moto's volume attachments. */
  syncDevices(): Promise<void> {
    return syncDevices(this);
  }

  /** Direct moto EC2 access for test set-up (not through the gateway). */
  get ec2(): EC2Client {
    return this.motoEc2;
  }

  async describeVolume(volumeId: string): Promise<Volume | undefined> {
    const out = await this.motoEc2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return out.Volumes?.[0];
  }

  async describeInstance(instanceId: string) {
    const out = await this.motoEc2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return out.Reservations?.[0]?.Instances?.[0];
  }
}
