/**
 * The host port over SSM Run Command: a command becomes its script's arguments (argvOf), runs
 * through AWS-RunShellScript, and comes back as the checked answer or a HostFailure whose kind is
 * the script's exit code.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { HostScriptBundle } from '../host/command';
import { argvOf, describeCommand, failureKindOf, HOST_ANSWERS, type HostAnswer, type HostCallOptions, type HostCommand, HostFailure, type Hosts } from '../host/commands';
import { lastLine, outputTruncated, runHostScript, runStderr, ssmEtcdRunner } from './run-command';
import { agentOnline } from './ssm-agent';

/** `ssm`: the client, built when first used (lean bundles: lib/aws/clients.ts). */
export function ssmHosts(ssm: () => SSMClient, scripts: HostScriptBundle): Hosts {
  return {
    async run<C extends HostCommand>(instanceId: string, command: C, opts: HostCallOptions = {}): Promise<HostAnswer<C['kind']>> {
      const { script, args } = argvOf(command);
      const name = describeCommand(command);
      const { retryUnfinished, onRetry, ...run } = opts;
      const once = () => runHostScript(ssm(), scripts, instanceId, script, args, { ...run, comment: `quorum-keeper ${name}` });
      let res = await once();
      if (res.exitCode === -1 && retryUnfinished) {
        onRetry?.(`SSM command ${res.commandId} ended ${res.status}; trying once more`);
        res = await once();
      }
      if (res.exitCode !== 0) {
        throw new HostFailure(failureKindOf(res.exitCode), name, instanceId, lastLine(runStderr(res)) || res.status, res.exitCode);
      }
      if (outputTruncated(res)) throw new HostFailure('truncated', name, instanceId, 'its answer was cut off by SSM (stdout is kept to 24,000 characters)');
      const schema = HOST_ANSWERS[command.kind];
      let parsed: unknown;
      try {
        parsed = JSON.parse(lastLine(res.stdout));
      } catch {
        throw new HostFailure('answer', name, instanceId, `its answer is not JSON: ${lastLine(res.stdout).slice(0, 200) || '(empty)'}`);
      }
      const checked = schema.safeParse(parsed);
      if (!checked.success) throw new HostFailure('answer', name, instanceId, `unexpected answer (are the host scripts of this version?): ${checked.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ').slice(0, 300)}`);
      return checked.data as HostAnswer<C['kind']>;
    },
    online: (instanceId) => agentOnline(ssm(), instanceId),
    etcdctl: (instanceId, opts = {}) => {
      const { retryUnfinished: _r, onRetry: _o, ...run } = opts;
      return ssmEtcdRunner(ssm(), scripts, instanceId, run);
    },
  };
}
