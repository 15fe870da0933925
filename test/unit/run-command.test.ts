/** SSM outcomes the sandbox does not produce on its own (aws-sdk-client-mock). */
import { GetCommandInvocationCommand, InvocationDoesNotExist, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { join } from 'node:path';
import { runHostScript, ssmEtcdRunner } from '../../lib/aws/run-command';
import { EtcdClient } from '../../lib/etcd';
import { loadHostScripts } from '../../lib/host/fs-bundle';

const bundle = loadHostScripts(join(__dirname, '..', '..', 'host'));
const I = 'i-0123456789abcdef0';
const fast = { minDelaySec: 1, maxDelaySec: 1, maxWaitSec: 5 };

describe('runHostScript outcomes', () => {
  const ssm = mockClient(SSMClient);
  const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  beforeEach(() => {
    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  });

  it('maps SSM TimedOut to exit -1 and the etcd layer to a timeout error', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'TimedOut', StatusDetails: 'ExecutionTimedOut', ResponseCode: -1, StandardErrorContent: 'partial' });
    const res = await runHostScript(client, bundle, I, 'etcdctl.sh', ['member', 'list'], fast);
    expect(res).toEqual({ commandId: 'cmd-1', status: 'TimedOut', exitCode: -1, stdout: '', stderr: 'partial' });
    const etcd = new EtcdClient(ssmEtcdRunner(client, bundle, I, fast), { endpoints: ['http://10.0.0.1:2379'] });
    await expect(etcd.memberList()).rejects.toMatchObject({ name: 'EtcdError', kind: 'timeout' });
  });

  it('keeps the script exit code of a Failed command', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', ResponseCode: 4, StandardErrorContent: 'belongs to cluster=x' });
    await expect(runHostScript(client, bundle, I, 'etcd-mount.sh', ['--volume-id', 'vol-0123456789abcdef0'], fast)).resolves.toMatchObject({ status: 'Failed', exitCode: 4 });
  });

  it('waits through InvocationDoesNotExist (command still being delivered)', async () => {
    ssm.on(GetCommandInvocationCommand)
      .rejectsOnce(new InvocationDoesNotExist({ message: 'not yet', $metadata: {} }))
      .resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: '{"ok":true}' });
    await expect(runHostScript(client, bundle, I, 'etcd-member.sh', ['status'], fast)).resolves.toMatchObject({ status: 'Success', exitCode: 0, stdout: '{"ok":true}' });
  });

  it('refuses a hostile instance ID before calling SSM', async () => {
    await expect(runHostScript(client, bundle, 'i-1;reboot', 'etcd-member.sh', ['status'], fast)).rejects.toThrow(/invalid instance ID/);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});
