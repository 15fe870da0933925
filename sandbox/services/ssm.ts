/**
 * SSM Run Command, which moto only records: SendCommand really runs the commands on the
 * target sandbox host (sh -c, like the SSM agent), GetCommandInvocation and
 * ListCommandInvocations report the real status, exit code and output, and
 * DescribeInstanceInformation the agent state of each sandbox host.
 */
import { paginateDescribeInstances } from '@aws-sdk/client-ec2';
import type { SandboxHost } from '../host';
import { asArray, type Handler, json, jsonError, type ParsedRequest, type Reply, type Routes } from '../protocol';
import type { Invocation, SandboxState, SsmFault } from './state';

// GetCommandInvocation returns "the first 24,000 characters written by the plugin to stdout" and
// "the first 8,000 characters written by the plugin to stderr"
// (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html).
const SSM_STDOUT_LIMIT = 24_000;
const SSM_STDERR_LIMIT = 8_000;

export function ssmRoutes(sb: SandboxState, forward: Handler): Routes {
  return {
    'ssm:SendCommand': (r) => sendCommand(sb, forward, r),
    'ssm:GetCommandInvocation': (r) => Promise.resolve(getCommandInvocation(sb, r)),
    'ssm:ListCommandInvocations': (r) => Promise.resolve(listCommandInvocations(sb, r)),
    'ssm:DescribeInstanceInformation': (r) => describeInstanceInformation(sb, r),
  };
}

async function managedHosts(sb: SandboxState): Promise<SandboxHost[]> {
  const running: string[] = [];
  for await (const page of paginateDescribeInstances({ client: sb.ec2 }, { Filters: [{ Name: 'instance-state-name', Values: ['running'] }] })) {
    for (const res of page.Reservations ?? []) for (const i of res.Instances ?? []) if (i.InstanceId) running.push(i.InstanceId);
  }
  if (sb.autoBoot) await Promise.all(running.map((id) => sb.bootHost(id)));
  // A booting instance's agent has not registered yet: SSM does not know it at all.
  return running.map((id) => sb.hosts.get(id)).filter((h): h is SandboxHost => h !== undefined && h.agentReadyAt <= Date.now());
}

async function describeInstanceInformation(sb: SandboxState, r: ParsedRequest): Promise<Reply> {
  const body = r.json ?? {};
  const wanted = new Set<string>();
  for (const f of [...asArray(body.Filters), ...asArray(body.InstanceInformationFilterList)]) {
    const key = (f as { Key?: string; key?: string }).Key ?? (f as { key?: string }).key;
    const values = (f as { Values?: string[]; valueSet?: string[] }).Values ?? (f as { valueSet?: string[] }).valueSet ?? [];
    if (key === 'InstanceIds') values.forEach((v) => wanted.add(v));
  }
  const hosts = (await managedHosts(sb)).filter((h) => wanted.size === 0 || wanted.has(h.instanceId));
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

async function sendCommand(sb: SandboxState, forward: Handler, r: ParsedRequest): Promise<Reply> {
  const body = r.json ?? {};
  const documentName = typeof body.DocumentName === 'string' ? body.DocumentName : '';
  const instanceIds = asArray(body.InstanceIds).map(String);
  if (documentName !== 'AWS-RunShellScript') {
    return jsonError('InvalidDocument', `the sandbox runs only AWS-RunShellScript, not ${documentName}`);
  }
  if (instanceIds.length === 0) return jsonError('InvalidInstanceId', 'InstanceIds is required (targets by tag are not modelled)');
  const params = (body.Parameters ?? {}) as Record<string, unknown>;
  // SendCommand refuses a document plus parameters over 64 KB: MaxDocumentSizeExceeded
  // (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_SendCommand.html).
  // AWS-RunShellScript itself is about 1 KB.
  const size = Buffer.byteLength(JSON.stringify(params)) + 1024;
  if (size > 64 * 1024) return jsonError('MaxDocumentSizeExceeded', `The size limit of a document is 64 KB (document and parameters: ${size} bytes)`);
  const commands = asArray(params.commands).map(String);
  const timeoutSec = Number(asArray(params.executionTimeout)[0] ?? 3600);
  const managed = new Map((await managedHosts(sb)).map((h) => [h.instanceId, h]));
  for (const id of instanceIds) {
    if (!managed.get(id)?.agentOnline) return jsonError('InvalidInstanceId', `Instances [[${id}]] not in a valid state for account 123456789012`);
  }
  // Let moto record the command too (ListCommands, CommandId format).
  const motoReply = await forward(r);
  if (motoReply.status !== 200) return motoReply;
  const parsed = JSON.parse(motoReply.body.toString()) as { Command: { CommandId: string } };
  const commandId = parsed.Command.CommandId;
  const comment = typeof body.Comment === 'string' ? body.Comment : '';
  const started = instanceIds.map((id) => startInvocation(sb, commandId, managed.get(id)!, documentName, commands, timeoutSec, ssmFaultFor(sb, comment)));
  await Promise.race([Promise.all(started.map((i) => i.done)), new Promise((r) => setTimeout(r, sb.sendCommandLingerMs))]);
  return motoReply;
}

function ssmFaultFor(sb: SandboxState, comment: string): SsmFault['outcome'] | undefined {
  const f = sb.ssmFaults.find((x) => x.times > 0 && x.match.test(comment));
  if (!f) return undefined;
  f.times -= 1;
  sb.ssmInjected.push({ comment, outcome: f.outcome });
  return f.outcome;
}

function startInvocation(sb: SandboxState, commandId: string, host: SandboxHost, documentName: string, commands: string[], timeoutSec: number, fault?: SsmFault['outcome']): Invocation {
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
    if (sb.commandStartDelayMs > 0) await new Promise((r) => setTimeout(r, sb.commandStartDelayMs));
    await sb.syncDevices();
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
  sb.invocations.set(`${commandId}/${host.instanceId}`, inv);
  return inv;
}

function invocationJson(inv: Invocation): Record<string, unknown> {
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
    StandardOutputContent: inv.stdout.slice(0, SSM_STDOUT_LIMIT),
    StandardOutputUrl: '',
    StandardErrorContent: inv.stderr.slice(0, SSM_STDERR_LIMIT),
    StandardErrorUrl: '',
  };
}

function getCommandInvocation(sb: SandboxState, r: ParsedRequest): Reply {
  const body = r.json ?? {};
  const inv = sb.invocations.get(`${String(body.CommandId)}/${String(body.InstanceId)}`);
  if (!inv) return jsonError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist)');
  return json(200, invocationJson(inv));
}

function listCommandInvocations(sb: SandboxState, r: ParsedRequest): Reply {
  const body = r.json ?? {};
  const list = [...sb.invocations.values()].filter((i) =>
    (body.CommandId === undefined || i.commandId === body.CommandId) && (body.InstanceId === undefined || i.instanceId === body.InstanceId));
  return json(200, {
    CommandInvocations: list.map((i) => {
      const j = invocationJson(i);
      return {
        CommandId: j.CommandId, InstanceId: j.InstanceId, DocumentName: j.DocumentName, Status: j.Status, StatusDetails: j.StatusDetails,
        RequestedDateTime: i.requestedAt.getTime() / 1000,
        ...(body.Details === true ? { CommandPlugins: [{ Name: 'aws:runShellScript', Status: j.Status, ResponseCode: j.ResponseCode, Output: String(j.StandardOutputContent).slice(0, 2500) }] } : {}),
      };
    }),
  });
}
