/**
 * The local sandbox AWS: ONE endpoint that the real AWS SDK v3 clients talk to. It forwards
 * every request to moto_server and fills the gaps moto 5.2.1 has (measured, see TOOLING.md):
 *
 *   ssm  SendCommand            moto records it; the sandbox really runs the commands on the
 *                               target sandbox host (sh -c, like the SSM agent)
 *   ssm  GetCommandInvocation / ListCommandInvocations   real status, exit code, output
 *   ssm  DescribeInstanceInformation                     agent state of each sandbox host
 *   autoscaling CompleteLifecycleAction / RecordLifecycleActionHeartbeat   modelled + recorded
 *   elbv2 DescribeTargetHealth  moto's answer, with each target's state set from its host's
 *                               apiserver /readyz
 *   ec2  AttachVolume / DetachVolume   moto's answer; the volume's directory appears in / leaves
 *                               the host's /dev/disk/by-id
 *   s3   PutObject              refuses a body whose SHA-256 differs from x-amz-checksum-sha256
 *                               (BadDigest), as S3 does; moto does not check
 *
 * Product code never knows: it only receives an endpoint URL and credentials.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, readlinkSync, readdirSync, rmSync, symlinkSync, lstatSync, existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DescribeInstancesCommand, DescribeVolumesCommand, EC2Client, paginateDescribeInstances, paginateDescribeVolumes } from '@aws-sdk/client-ec2';
import { SandboxHost } from './host';
import { LifecycleModel } from './lifecycle';
import { MotoServer } from './moto';
import { makeTempDir, removeDir } from './procs';

export const SANDBOX_REGION = 'us-east-1';
const SSM_OUTPUT_LIMIT = 24_000; // SSM truncates StandardOutputContent at 24,000 characters.

export interface AwsClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  forcePathStyle: boolean;
}

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

type Handler = (req: ParsedRequest) => Promise<Reply>;

interface ParsedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  /** Base64 SHA-256 of the body, computed while it arrived (PUTs that carry x-amz-checksum-sha256). */
  sha256: string | null;
  service: string;
  /** AmazonSSM.SendCommand → SendCommand; query protocol → Action. */
  action: string;
  form: URLSearchParams | null;
  json: Record<string, unknown> | null;
}

interface Reply {
  status: number;
  headers: Record<string, string>;
  body: Buffer | string;
}

/**
 * An AWS API fault for the fault matrix: calls whose `service:Action` (REST S3: `s3:METHOD`)
 * matches answer with throttling or a 5xx — `before` doing anything, or `after` the call was
 * carried out (the answer is lost, the change is made: a retry then repeats it) — for the first
 * `times` calls of each matching operation.
 */
export interface ApiFault {
  match: RegExp;
  kind: 'throttle' | 'server-error';
  when: 'before' | 'after';
  times: number;
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

export class Sandbox {
  readonly lifecycle = new LifecycleModel();
  readonly hosts = new Map<string, SandboxHost>();
  readonly invocations = new Map<string, Invocation>();
  /** Every DetachVolume the sandbox forwarded, with its Force flag (safety assertions). */
  readonly detachCalls: Array<{ volumeId: string; instanceId: string; force: boolean }> = [];
  /** S3 uploads the sandbox refused the way S3 would (checksum mismatch). */
  readonly s3Rejections: Array<{ url: string; reason: string }> = [];
  /** Volumes whose attachment never completes (EC2 shows `attaching`; no device appears). */
  readonly stuckAttaching = new Set<string>();
  /** Faults to inject (see ApiFault), and every fault injected so far. */
  readonly apiFaults: ApiFault[] = [];
  readonly injected: Array<{ key: string; kind: ApiFault['kind']; when: ApiFault['when'] }> = [];
  readonly ssmFaults: SsmFault[] = [];
  readonly ssmInjected: Array<{ comment: string; outcome: SsmFault['outcome'] }> = [];
  private readonly faultCounts = new Map<string, number>();
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
  private readonly motoEc2: EC2Client;
  private booting = new Map<string, Promise<SandboxHost>>();

  private constructor(
    readonly dir: string,
    readonly moto: MotoServer,
    private readonly server: Server,
    readonly endpoint: string,
  ) {
    this.motoEc2 = new EC2Client(this.motoConfig());
  }

  static async start(opts: { moto?: MotoServer } = {}): Promise<Sandbox> {
    const moto = opts.moto ?? (await MotoServer.start());
    const dir = makeTempDir('world');
    const box: { sandbox?: Sandbox } = {};
    const server = createServer((req, res) => {
      if (!box.sandbox) {
        res.writeHead(503).end();
        return;
      }
      void box.sandbox.handle(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    const sandbox = new Sandbox(dir, moto, server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    box.sandbox = sandbox;
    return sandbox;
  }

  /** Configuration for real SDK clients: product code gets exactly this and nothing else. */
  clientConfig(): AwsClientConfig {
    return {
      endpoint: this.endpoint,
      region: SANDBOX_REGION,
      credentials: { accessKeyId: 'sandbox', secretAccessKey: 'sandbox' },
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

  async bootHost(instanceId: string): Promise<SandboxHost> {
    const existing = this.hosts.get(instanceId);
    if (existing) return existing;
    let p = this.booting.get(instanceId);
    if (!p) {
      p = SandboxHost.boot(instanceId, join(this.dir, 'hosts', instanceId)).then((h) => {
        this.hosts.set(instanceId, h);
        return h;
      });
      this.booting.set(instanceId, p);
    }
    return p;
  }

  /** Stops every host's etcd and apiserver and forgets all state (moto included). */
  async reset(): Promise<void> {
    await Promise.all([...this.invocations.values()].map((i) => i.done));
    await Promise.all([...this.hosts.values()].map((h) => h.shutdown()));
    this.hosts.clear();
    this.booting.clear();
    this.invocations.clear();
    this.lifecycle.clear();
    this.detachCalls.length = 0;
    this.s3Rejections.length = 0;
    this.apiFaults.length = 0;
    this.stuckAttaching.clear();
    this.injected.length = 0;
    this.ssmFaults.length = 0;
    this.ssmInjected.length = 0;
    this.faultCounts.clear();
    rmSync(join(this.dir, 'hosts'), { recursive: true, force: true });
    rmSync(join(this.dir, 'volumes'), { recursive: true, force: true });
    await this.moto.reset();
  }

  async stop(opts: { keepMoto?: boolean } = {}): Promise<void> {
    await Promise.all([...this.invocations.values()].map((i) => i.done));
    await Promise.all([...this.hosts.values()].map((h) => h.shutdown()));
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
    this.motoEc2.destroy();
    if (!opts.keepMoto) await this.moto.stop();
    if (!process.env.QK_KEEP_TMP) removeDir(this.dir);
  }

  // ---------------------------------------------------------------------------------------
  // HTTP plumbing

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: Reply;
    try {
      const parsed = await parseRequest(req);
      const fault = this.faultFor(parsed);
      if (fault?.when === 'before') {
        reply = faultReply(parsed.service, fault.kind);
      } else {
        const handler = this.route(parsed);
        reply = handler ? await handler(parsed) : (this.checkS3Checksum(parsed) ?? await this.forward(parsed));
        if (fault) reply = faultReply(parsed.service, fault.kind);
      }
    } catch (err) {
      reply = { status: 500, headers: { 'content-type': 'text/plain' }, body: `sandbox error: ${err instanceof Error ? err.stack : String(err)}` };
    }
    res.writeHead(reply.status, reply.headers);
    res.end(reply.body);
  }

  private faultFor(r: ParsedRequest): ApiFault | undefined {
    const key = `${r.service}:${r.action || r.method}`;
    for (const [i, f] of this.apiFaults.entries()) {
      if (!f.match.test(key)) continue;
      const counted = `${i}|${key}`;
      const n = this.faultCounts.get(counted) ?? 0;
      if (n >= f.times) continue;
      this.faultCounts.set(counted, n + 1);
      this.injected.push({ key, kind: f.kind, when: f.when });
      return f;
    }
    return undefined;
  }

  /** EC2 refuses to attach a volume that is attached (moto re-attaches it silently). */
  private async attachVolume(r: ParsedRequest): Promise<Reply> {
    const volumeId = r.form?.get('VolumeId') ?? '';
    const attached = (await this.describeVolume(volumeId))?.Attachments?.find((a) => a.State === 'attached' || a.State === 'attaching');
    if (attached) return ec2Error(400, 'VolumeInUse', `${volumeId} is already attached to an instance`);
    return this.forwardThenSync(r);
  }

  private route(r: ParsedRequest): Handler | undefined {
    const key = `${r.service}:${r.action}`;
    const table: Record<string, Handler> = {
      'ssm:SendCommand': (x) => this.sendCommand(x),
      'ssm:GetCommandInvocation': (x) => this.getCommandInvocation(x),
      'ssm:ListCommandInvocations': (x) => this.listCommandInvocations(x),
      'ssm:DescribeInstanceInformation': (x) => this.describeInstanceInformation(x),
      'autoscaling:CompleteLifecycleAction': (x) => this.completeLifecycleAction(x),
      'autoscaling:RecordLifecycleActionHeartbeat': (x) => this.recordHeartbeat(x),
      'elasticloadbalancing:DescribeTargetHealth': (x) => this.describeTargetHealth(x),
      'ec2:AttachVolume': (x) => this.attachVolume(x),
      'ec2:DetachVolume': (x) => {
        this.detachCalls.push({ volumeId: x.form?.get('VolumeId') ?? '', instanceId: x.form?.get('InstanceId') ?? '', force: x.form?.get('Force') === 'true' });
        return this.forwardThenSync(x);
      },
      'ec2:DescribeVolumes': (x) => this.withStuckAttachments(x),
      'autoscaling:DescribeAutoScalingInstances': (x) => this.withWaitStates(x),
      'autoscaling:DescribeAutoScalingGroups': (x) => this.withWaitStates(x),
    };
    return table[key];
  }

  private async forward(r: ParsedRequest): Promise<Reply> {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers)) {
      if (v === undefined || ['host', 'connection', 'content-length', 'transfer-encoding', 'expect'].includes(k)) continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    const hasBody = !['GET', 'HEAD'].includes(r.method);
    const res = await fetch(`${this.moto.url}${r.url}`, { method: r.method, headers, ...(hasBody ? { body: r.body } : {}), redirect: 'manual' });
    const out: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      // (A HEAD answer has no body: its content-length is the object's size and must stay.)
      if (!['transfer-encoding', 'connection', 'content-encoding'].includes(k) && (k !== 'content-length' || r.method === 'HEAD')) out[k] = v;
    });
    return { status: res.status, headers: out, body: Buffer.from(await res.arrayBuffer()) };
  }

  // ---------------------------------------------------------------------------------------
  // S3

  /**
   * S3 checks a PUT's x-amz-checksum-sha256 against the body and refuses a mismatch with
   * BadDigest; moto stores whatever it is told. (Streaming aws-chunked bodies carry their
   * checksum in a trailer and are passed through.)
   */
  private checkS3Checksum(r: ParsedRequest): Reply | null {
    const claimed = r.headers['x-amz-checksum-sha256'];
    if (r.method !== 'PUT' || typeof claimed !== 'string' || String(r.headers['content-encoding'] ?? '').includes('aws-chunked')) return null;
    const actual = r.sha256;
    if (actual === claimed) return null;
    this.s3Rejections.push({ url: r.url.split('?')[0] ?? '', reason: 'BadDigest' });
    return {
      status: 400, headers: { 'content-type': 'application/xml' },
      body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the calculated checksum.</Message><RequestId>${randomUUID()}</RequestId></Error>`,
    };
  }

  // ---------------------------------------------------------------------------------------
  // SSM

  private async managedHosts(): Promise<SandboxHost[]> {
    const running: string[] = [];
    for await (const page of paginateDescribeInstances({ client: this.motoEc2 }, { Filters: [{ Name: 'instance-state-name', Values: ['running'] }] })) {
      for (const res of page.Reservations ?? []) for (const i of res.Instances ?? []) if (i.InstanceId) running.push(i.InstanceId);
    }
    if (this.autoBoot) await Promise.all(running.map((id) => this.bootHost(id)));
    return running.map((id) => this.hosts.get(id)).filter((h): h is SandboxHost => h !== undefined);
  }

  private async describeInstanceInformation(r: ParsedRequest): Promise<Reply> {
    const body = r.json ?? {};
    const wanted = new Set<string>();
    for (const f of [...asArray(body.Filters), ...asArray(body.InstanceInformationFilterList)]) {
      const key = (f as { Key?: string; key?: string }).Key ?? (f as { key?: string }).key;
      const values = (f as { Values?: string[]; valueSet?: string[] }).Values ?? (f as { valueSet?: string[] }).valueSet ?? [];
      if (key === 'InstanceIds') values.forEach((v) => wanted.add(v));
    }
    const hosts = (await this.managedHosts()).filter((h) => wanted.size === 0 || wanted.has(h.instanceId));
    const now = Date.now() / 1000;
    return json(200, {
      InstanceInformationList: hosts.map((h) => ({
        InstanceId: h.instanceId,
        PingStatus: h.agentOnline ? 'Online' : 'ConnectionLost',
        LastPingDateTime: now,
        AgentVersion: '3.3.0.0-sandbox',
        IsLatestVersion: true,
        PlatformType: 'Linux',
        PlatformName: 'Sandbox',
        ResourceType: 'EC2Instance',
        IPAddress: '127.0.0.1',
        ComputerName: h.instanceId,
      })),
    });
  }

  private async sendCommand(r: ParsedRequest): Promise<Reply> {
    const body = r.json ?? {};
    const documentName = typeof body.DocumentName === 'string' ? body.DocumentName : '';
    const instanceIds = asArray(body.InstanceIds).map(String);
    if (documentName !== 'AWS-RunShellScript') {
      return ssmError('InvalidDocument', `the sandbox runs only AWS-RunShellScript, not ${documentName}`);
    }
    if (instanceIds.length === 0) return ssmError('InvalidInstanceId', 'InstanceIds is required (targets by tag are not modelled)');
    const params = (body.Parameters ?? {}) as Record<string, unknown>;
    const commands = asArray(params.commands).map(String);
    const timeoutSec = Number(asArray(params.executionTimeout)[0] ?? 3600);
    const managed = new Map((await this.managedHosts()).map((h) => [h.instanceId, h]));
    for (const id of instanceIds) {
      if (!managed.get(id)?.agentOnline) return ssmError('InvalidInstanceId', `Instances [[${id}]] not in a valid state for account 123456789012`);
    }
    // Let moto record the command too (ListCommands, CommandId format).
    const motoReply = await this.forward(r);
    if (motoReply.status !== 200) return motoReply;
    const parsed = JSON.parse(motoReply.body.toString()) as { Command: { CommandId: string } };
    const commandId = parsed.Command.CommandId;
    const comment = typeof body.Comment === 'string' ? body.Comment : '';
    const started = instanceIds.map((id) => this.startInvocation(commandId, managed.get(id)!, documentName, commands, timeoutSec, this.ssmFaultFor(comment)));
    await Promise.race([Promise.all(started.map((i) => i.done)), new Promise((r) => setTimeout(r, this.sendCommandLingerMs))]);
    return motoReply;
  }

  private ssmFaultFor(comment: string): SsmFault['outcome'] | undefined {
    const f = this.ssmFaults.find((x) => x.times > 0 && x.match.test(comment));
    if (!f) return undefined;
    f.times -= 1;
    this.ssmInjected.push({ comment, outcome: f.outcome });
    return f.outcome;
  }

  private startInvocation(commandId: string, host: SandboxHost, documentName: string, commands: string[], timeoutSec: number, fault?: SsmFault['outcome']): Invocation {
    const inv: Invocation = {
      commandId, instanceId: host.instanceId, documentName, commands,
      status: 'Pending', statusDetails: 'Pending', responseCode: -1, stdout: '', stderr: '',
      requestedAt: new Date(), startedAt: null, endedAt: null, done: Promise.resolve(),
    };
    inv.done = (async () => {
      if (fault === 'undeliverable' || fault === 'failed') {
        inv.endedAt = new Date();
        Object.assign(inv, fault === 'failed'
          ? { status: 'Failed', statusDetails: 'Failed', responseCode: 1, stderr: 'sandbox fault: the command failed\n' }
          : { status: 'TimedOut', statusDetails: 'DeliveryTimedOut', responseCode: -1 });
        return;
      }
      if (this.commandStartDelayMs > 0) await new Promise((r) => setTimeout(r, this.commandStartDelayMs));
      await this.syncDevices();
      inv.status = 'InProgress';
      inv.statusDetails = 'InProgress';
      inv.startedAt = new Date();
      const out = await host.run(commands, timeoutSec * 1000);
      inv.endedAt = new Date();
      inv.stdout = out.stdout;
      inv.stderr = out.stderr;
      if (out.timedOut || fault === 'lost-answer') {
        inv.status = 'TimedOut';
        inv.statusDetails = 'ExecutionTimedOut';
        inv.responseCode = -1;
      } else {
        inv.responseCode = out.exitCode ?? -1;
        inv.status = out.exitCode === 0 ? 'Success' : 'Failed';
        inv.statusDetails = inv.status;
      }
    })();
    this.invocations.set(`${commandId}/${host.instanceId}`, inv);
    return inv;
  }

  private invocationJson(inv: Invocation): Record<string, unknown> {
    const t = (d: Date | null) => (d ? d.toISOString() : '');
    return {
      CommandId: inv.commandId,
      InstanceId: inv.instanceId,
      Comment: '',
      DocumentName: inv.documentName,
      DocumentVersion: '$DEFAULT',
      PluginName: 'aws:runShellScript',
      ResponseCode: inv.responseCode,
      ExecutionStartDateTime: t(inv.startedAt),
      ExecutionElapsedTime: inv.startedAt ? `PT${(((inv.endedAt ?? new Date()).getTime() - inv.startedAt.getTime()) / 1000).toFixed(3)}S` : '',
      ExecutionEndDateTime: t(inv.endedAt),
      Status: inv.status,
      StatusDetails: inv.statusDetails,
      StandardOutputContent: inv.stdout.slice(0, SSM_OUTPUT_LIMIT),
      StandardOutputUrl: '',
      StandardErrorContent: inv.stderr.slice(0, SSM_OUTPUT_LIMIT),
      StandardErrorUrl: '',
    };
  }

  private getCommandInvocation(r: ParsedRequest): Promise<Reply> {
    const body = r.json ?? {};
    const inv = this.invocations.get(`${String(body.CommandId)}/${String(body.InstanceId)}`);
    if (!inv) return Promise.resolve(ssmError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist)'));
    return Promise.resolve(json(200, this.invocationJson(inv)));
  }

  private listCommandInvocations(r: ParsedRequest): Promise<Reply> {
    const body = r.json ?? {};
    const list = [...this.invocations.values()].filter((i) =>
      (body.CommandId === undefined || i.commandId === body.CommandId) && (body.InstanceId === undefined || i.instanceId === body.InstanceId));
    return Promise.resolve(json(200, {
      CommandInvocations: list.map((i) => {
        const j = this.invocationJson(i);
        return {
          CommandId: j.CommandId, InstanceId: j.InstanceId, DocumentName: j.DocumentName, Status: j.Status, StatusDetails: j.StatusDetails,
          RequestedDateTime: i.requestedAt.getTime() / 1000,
          ...(body.Details === true ? { CommandPlugins: [{ Name: 'aws:runShellScript', Status: j.Status, ResponseCode: j.ResponseCode, Output: String(j.StandardOutputContent).slice(0, 2500) }] } : {}),
        };
      }),
    }));
  }

  // ---------------------------------------------------------------------------------------
  // Auto Scaling lifecycle actions

  private completeLifecycleAction(r: ParsedRequest): Promise<Reply> {
    const f = r.form ?? new URLSearchParams();
    const token = f.get('LifecycleActionToken') ?? undefined;
    const instanceId = f.get('InstanceId') ?? undefined;
    const error = this.lifecycle.complete({
      asg: f.get('AutoScalingGroupName') ?? '', hook: f.get('LifecycleHookName') ?? '', result: f.get('LifecycleActionResult') ?? '',
      ...(token !== undefined ? { token } : {}), ...(instanceId !== undefined ? { instanceId } : {}),
    });
    return Promise.resolve(error ? queryError('ValidationError', error) : queryOk('CompleteLifecycleAction'));
  }

  private recordHeartbeat(r: ParsedRequest): Promise<Reply> {
    const f = r.form ?? new URLSearchParams();
    const token = f.get('LifecycleActionToken') ?? undefined;
    const instanceId = f.get('InstanceId') ?? undefined;
    const error = this.lifecycle.heartbeat({
      asg: f.get('AutoScalingGroupName') ?? '', hook: f.get('LifecycleHookName') ?? '',
      ...(token !== undefined ? { token } : {}), ...(instanceId !== undefined ? { instanceId } : {}),
    });
    return Promise.resolve(error ? queryError('ValidationError', error) : queryOk('RecordLifecycleActionHeartbeat'));
  }

  /**
   * moto puts every ASG instance InService at once; while a lifecycle action is pending AWS
   * reports Pending:Wait / Terminating:Wait. Rewrite LifecycleState for those instances.
   */
  private async withWaitStates(r: ParsedRequest): Promise<Reply> {
    const reply = await this.forward(r);
    if (reply.status !== 200 || this.lifecycle.pending.size === 0) return reply;
    const states = new Map<string, string>();
    for (const a of this.lifecycle.pending.values()) states.set(a.instanceId, a.transition === 'autoscaling:EC2_INSTANCE_LAUNCHING' ? 'Pending:Wait' : 'Terminating:Wait');
    // Innermost <member> blocks: one per instance, in both DescribeAutoScalingInstances and the
    // Instances list of DescribeAutoScalingGroups.
    const xml = reply.body.toString().replace(/<member>((?:(?!<member>)[\s\S])*?)<\/member>/g, (block, inner: string) => {
      const id = /<InstanceId>([^<]+)<\/InstanceId>/.exec(inner)?.[1];
      const state = id ? states.get(id) : undefined;
      return state ? block.replace(/<LifecycleState>[^<]*<\/LifecycleState>/, `<LifecycleState>${state}</LifecycleState>`) : block;
    });
    return { ...reply, body: xml };
  }

  // ---------------------------------------------------------------------------------------
  // ELBv2 target health follows each host's apiserver /readyz

  private async describeTargetHealth(r: ParsedRequest): Promise<Reply> {
    const reply = await this.forward(r);
    if (reply.status !== 200) return reply;
    const xml = reply.body.toString();
    const members = [...xml.matchAll(/<member>([\s\S]*?)<\/member>/g)];
    let out = xml;
    for (const m of members) {
      const block = m[1] ?? '';
      const id = /<Target>[\s\S]*?<Id>([^<]+)<\/Id>/.exec(block)?.[1];
      if (!id) continue;
      // Deregistered targets keep moto's answer (unused / draining); only registered ones follow /readyz.
      const motoState = /<TargetHealth>[\s\S]*?<State>([^<]+)<\/State>/.exec(block)?.[1];
      if (motoState === 'unused' || motoState === 'draining') continue;
      const host = this.hosts.get(id);
      const healthy = host ? await fetch(host.apiserver.readyzUrl, { signal: AbortSignal.timeout(1500) }).then((x) => x.ok, () => false) : false;
      const health = healthy
        ? '<TargetHealth><State>healthy</State></TargetHealth>'
        : '<TargetHealth><State>unhealthy</State><Reason>Target.FailedHealthChecks</Reason><Description>Health checks failed (sandbox: apiserver /readyz not OK)</Description></TargetHealth>';
      const replaced = block.replace(/<TargetHealth>[\s\S]*?<\/TargetHealth>/, health);
      out = out.replace(`<member>${block}</member>`, `<member>${replaced}</member>`);
    }
    return { ...reply, body: out };
  }

  // ---------------------------------------------------------------------------------------
  // EBS: a volume is a directory; attachment follows moto

  /** A stuck volume's attachment stays `attaching` (the volume itself reads `in-use`, as on EC2). */
  private async withStuckAttachments(r: ParsedRequest): Promise<Reply> {
    const reply = await this.forward(r);
    if (reply.status !== 200 || this.stuckAttaching.size === 0) return reply;
    let xml = reply.body.toString();
    // Each volume's attachmentSet names its volume (element order follows the EC2 model).
    xml = xml.replace(/<attachmentSet>[\s\S]*?<\/attachmentSet>/g, (set) => {
      const vol = /<volumeId>([^<]+)<\/volumeId>/.exec(set)?.[1];
      return vol && this.stuckAttaching.has(vol) ? set.replace(/<status>attached<\/status>/g, '<status>attaching</status>') : set;
    });
    return { ...reply, body: xml };
  }

  private async forwardThenSync(r: ParsedRequest): Promise<Reply> {
    const reply = await this.forward(r);
    if (reply.status === 200) await this.syncDevices();
    return reply;
  }

  /** Makes each host's /dev/disk/by-id match moto's volume attachments. */
  async syncDevices(): Promise<void> {
    const attached = new Map<string, Set<string>>();
    for await (const page of paginateDescribeVolumes({ client: this.motoEc2 }, {})) {
      for (const v of page.Volumes ?? []) {
        for (const a of v.Attachments ?? []) {
          if (!a.InstanceId || !v.VolumeId || (a.State !== 'attached' && a.State !== 'attaching') || this.stuckAttaching.has(v.VolumeId)) continue;
          if (!attached.has(a.InstanceId)) attached.set(a.InstanceId, new Set());
          attached.get(a.InstanceId)!.add(v.VolumeId);
        }
      }
    }
    for (const host of this.hosts.values()) {
      const byId = join(host.root, 'dev/disk/by-id');
      mkdirSync(byId, { recursive: true });
      const want = attached.get(host.instanceId) ?? new Set<string>();
      const prefix = 'nvme-Amazon_Elastic_Block_Store_';
      for (const entry of readdirSync(byId)) {
        const vol = `vol-${entry.slice(prefix.length + 3)}`;
        if (entry.startsWith(prefix) && !want.has(vol)) {
          rmSync(join(byId, entry), { force: true });
          // A detached volume vanishes from under its mount point.
          const mount = join(host.root, 'var/lib/etcd');
          if (isSymlinkTo(mount, this.volumeDir(vol))) {
            rmSync(mount, { force: true });
            symlinkSync(join(this.dir, 'detached', vol), mount);
          }
        }
      }
      for (const vol of want) {
        const link = join(byId, `${prefix}${vol.replace('-', '')}`);
        if (!existsSync(link)) symlinkSync(this.volumeDir(vol), link);
      }
    }
  }

  /** Direct moto EC2 access for test set-up (not through the gateway). */
  get ec2(): EC2Client {
    return this.motoEc2;
  }

  async describeVolume(volumeId: string) {
    const out = await this.motoEc2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }));
    return out.Volumes?.[0];
  }

  async describeInstance(instanceId: string) {
    const out = await this.motoEc2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return out.Reservations?.[0]?.Instances?.[0];
  }
}

function isSymlinkTo(path: string, target: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink() && readlinkSync(path) === target;
  } catch {
    return false;
  }
}

function asArray(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

async function parseRequest(req: IncomingMessage): Promise<ParsedRequest> {
  const chunks: Buffer[] = [];
  // S3 checks a PUT's checksum as the bytes arrive; so does the sandbox (not after buffering).
  const hash = req.method === 'PUT' && req.headers['x-amz-checksum-sha256'] !== undefined ? createHash('sha256') : null;
  for await (const c of req) {
    chunks.push(c as Buffer);
    hash?.update(c as Buffer);
  }
  const body = Buffer.concat(chunks);
  const sha256 = hash?.digest('base64') ?? null;
  const auth = String(req.headers.authorization ?? '');
  // Signed header, or a presigned URL's X-Amz-Credential (the masters' S3 transfers).
  const presigned = new URL(req.url ?? '/', 'http://sandbox').searchParams.get('X-Amz-Credential') ?? '';
  const service = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(auth)?.[1] ?? /^[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(presigned)?.[1] ?? '';
  const target = req.headers['x-amz-target'];
  let action = '';
  let form: URLSearchParams | null = null;
  let jsonBody: Record<string, unknown> | null = null;
  if (typeof target === 'string') {
    action = target.split('.').pop() ?? '';
    try {
      jsonBody = JSON.parse(body.toString() || '{}') as Record<string, unknown>;
    } catch {
      jsonBody = null;
    }
  } else if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
    form = new URLSearchParams(body.toString());
    action = form.get('Action') ?? '';
  }
  return { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body, sha256, service, action, form, json: jsonBody };
}

function json(status: number, body: unknown): Reply {
  return { status, headers: { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() }, body: JSON.stringify(body) };
}

function ssmError(type: string, message: string): Reply {
  return json(400, { __type: type, message });
}

function queryOk(action: string): Reply {
  return {
    status: 200,
    headers: { 'content-type': 'text/xml' },
    body: `<${action}Response xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><${action}Result/><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
  };
}

/** The error each protocol's AWS service answers when throttling or failing (the SDK retries both). */
function faultReply(service: string, kind: ApiFault['kind']): Reply {
  const throttle = kind === 'throttle';
  const id = randomUUID();
  if (service === 'ssm' || service === 'dynamodb') {
    return json(throttle ? 400 : 500, { __type: throttle ? 'ThrottlingException' : 'InternalServerError', message: throttle ? 'Rate exceeded' : 'Internal server error' });
  }
  if (service === 'ec2') {
    return throttle ? ec2Error(503, 'RequestLimitExceeded', 'Request limit exceeded.') : ec2Error(500, 'InternalError', 'An internal error has occurred');
  }
  if (service === 's3') {
    return { status: throttle ? 503 : 500, headers: { 'content-type': 'application/xml' }, body: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${throttle ? 'SlowDown' : 'InternalError'}</Code><Message>${throttle ? 'Please reduce your request rate.' : 'We encountered an internal error. Please try again.'}</Message><RequestId>${id}</RequestId></Error>` };
  }
  const r = queryError(throttle ? 'Throttling' : 'InternalFailure', throttle ? 'Rate exceeded' : 'Internal failure');
  return throttle ? r : { ...r, status: 500 };
}

function ec2Error(status: number, code: string, message: string): Reply {
  return { status, headers: { 'content-type': 'text/xml' }, body: `<Response><Errors><Error><Code>${code}</Code><Message>${message}</Message></Error></Errors><RequestID>${randomUUID()}</RequestID></Response>` };
}

function queryError(code: string, message: string): Reply {
  const esc = message.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  return {
    status: 400,
    headers: { 'content-type': 'text/xml' },
    body: `<ErrorResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><Error><Type>Sender</Type><Code>${code}</Code><Message>${esc}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
  };
}
