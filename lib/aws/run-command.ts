/**
 * Runs a project host script on a master through SSM Run Command (AWS-RunShellScript) and
 * returns its real exit code and output. Uses the SDK's own waiter (which retries
 * InvocationDoesNotExist while the command is being delivered).
 */
import { GetCommandInvocationCommand, SendCommandCommand, type SSMClient, waitUntilCommandExecuted } from '@aws-sdk/client-ssm';
import type { EtcdRunner } from '../etcd/client';
import { check } from '../validate';
import { type HostScriptBundle, type HostScriptName, renderHostCommand } from '../host/command';

export interface HostRunResult {
  commandId: string;
  status: string;
  /** The script's exit code; -1 when it did not finish (timed out, cancelled, undeliverable). */
  exitCode: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Seconds the script may run on the host (SSM executionTimeout). */
  executionTimeoutSec?: number;
  /** Seconds this call waits for the result. */
  maxWaitSec?: number;
  /** Waiter polling interval floor in seconds (flows: their timings' commandMinDelaySec, 0.5 on AWS). */
  minDelaySec?: number;
  /** Waiter polling interval ceiling in seconds (default 10). */
  maxDelaySec?: number;
  abortSignal?: AbortSignal;
  comment?: string;
}

export async function runHostScript(
  ssm: SSMClient,
  bundle: HostScriptBundle,
  instanceId: string,
  script: HostScriptName,
  args: readonly string[],
  opts: RunOptions = {},
): Promise<HostRunResult> {
  check('instanceId', instanceId, 'instance ID');
  const commands = renderHostCommand(bundle, script, args);
  const sent = await ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [instanceId],
      Comment: (opts.comment ?? `quorum-keeper ${script} ${args[0] ?? ''}`).slice(0, 100),
      Parameters: { commands, executionTimeout: [String(opts.executionTimeoutSec ?? 600)] },
      TimeoutSeconds: 60,
    }),
    opts.abortSignal ? { abortSignal: opts.abortSignal } : {},
  );
  const commandId = sent.Command?.CommandId;
  if (!commandId) throw new Error(`SendCommand returned no CommandId for ${instanceId}`);
  try {
    await waitUntilCommandExecuted(
      { client: ssm, maxWaitTime: opts.maxWaitSec ?? 900, minDelay: opts.minDelaySec ?? 2, maxDelay: Math.max(opts.maxDelaySec ?? 10, opts.minDelaySec ?? 2), ...(opts.abortSignal ? { abortSignal: opts.abortSignal } : {}) },
      { CommandId: commandId, InstanceId: instanceId },
    );
  } catch {
    // The waiter throws for Failed / TimedOut / Cancelled as well as for its own timeout;
    // the invocation below says which.
  }
  const inv = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
  const status = inv.Status ?? 'Unknown';
  const finished = status === 'Success' || status === 'Failed';
  return {
    commandId,
    status,
    exitCode: finished ? (inv.ResponseCode ?? -1) : -1,
    stdout: inv.StandardOutputContent ?? '',
    stderr: inv.StandardErrorContent ?? '',
  };
}

/**
 * GetCommandInvocation returns only the first 24,000 characters of stdout (and 8,000 of stderr)
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetCommandInvocation.html).
 * A script's answer is its LAST line: when stdout reached the limit, that line is cut off.
 */
export const SSM_STDOUT_LIMIT = 24_000;
export const outputTruncated = (res: Pick<HostRunResult, 'stdout'>): boolean => res.stdout.length >= SSM_STDOUT_LIMIT;

/** A script whose answer SSM cut off: not an answer at all (not a malformed one). */
export class OutputTruncated extends Error {
  override readonly name = 'OutputTruncated';
  constructor(readonly script: HostScriptName, readonly instanceId: string) {
    super(`${script} on ${instanceId}: its answer was truncated by SSM (stdout is kept to ${SSM_STDOUT_LIMIT} characters)`);
  }
}

/** A run's stderr, saying how SSM ended a command that did not finish (for error messages and classification). */
export const runStderr = (res: HostRunResult): string =>
  res.exitCode === -1 ? `${res.stderr}\nSSM command ${res.commandId} ended ${res.status}` : res.stderr;

/** The last line of a script's output: host scripts print their one JSON result (or error) last. */
export const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';


/** An EtcdRunner that runs etcdctl/etcdutl on a master through host/etcdctl.sh. */
export function ssmEtcdRunner(ssm: SSMClient, bundle: HostScriptBundle, instanceId: string, opts: RunOptions = {}): EtcdRunner {
  return async (inv) => {
    const args = inv.bin === 'etcdutl' ? ['--tool', 'etcdutl', ...inv.args] : inv.args;
    // SSM history (and the sandbox's fault matcher) shows the subcommand, not the first flag.
    const words = inv.args.filter((a) => !a.startsWith('-')).slice(0, 2).join(' ');
    const res = await runHostScript(ssm, bundle, instanceId, 'etcdctl.sh', args, { comment: `quorum-keeper ${inv.bin} ${words}`, ...opts });
    return {
      exitCode: res.exitCode,
      stdout: res.stdout,
      stderr: runStderr(res),
    };
  };
}
