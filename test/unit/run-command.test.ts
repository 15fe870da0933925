/** SSM outcomes the sandbox does not produce on its own (aws-sdk-client-mock). */
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, InvocationDoesNotExist, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { readFileSync } from 'node:fs';
import { mockClient } from 'aws-sdk-client-mock';
import { join } from 'node:path';
import { runHostJson, runHostScript, ssmEtcdRunner } from '../../lib/aws/run-command';
import { surveyCluster } from '../support/survey';
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

describe('SSM output limits (GetCommandInvocation keeps the first 24,000 characters of stdout)', () => {
  const ssm = mockClient(SSMClient);
  const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const I2 = 'i-0123456789abcdef1';
  const cut = `{"local":{"running":true,"healthy":true,"clientUrl":"http://10.0.0.1:2379","peerUrl":"http://10.0.0.1:2380"},"queries":{"members":{"rc":0,"out":"${'A'.repeat(24_000)}`.slice(0, 24_000);
  const whole = JSON.stringify({
    local: { running: true, healthy: true, clientUrl: 'http://10.0.0.2:2379', peerUrl: 'http://10.0.0.2:2380' },
    queries: { members: { rc: 0, out: readFileSync(join(__dirname, '..', 'fixtures', 'etcd-3.4', 'member-list-3.json')).toString('base64'), err: '' } },
    leases: {},
  });
  beforeEach(() => {
    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    ssm.on(DescribeInstanceInformationCommand).callsFake((input: { Filters: Array<{ Values: string[] }> }) => ({ InstanceInformationList: [{ InstanceId: input.Filters[0]!.Values[0], PingStatus: 'Online' }] }));
    ssm.on(GetCommandInvocationCommand, { InstanceId: I }).resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: cut });
    ssm.on(GetCommandInvocationCommand, { InstanceId: I2 }).resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: `${whole}\n` });
  });

  it('a host answer cut at the limit is an explicit "truncated" error, not a JSON parse error', async () => {
    await expect(runHostJson(client, bundle, I, 'etcd-member.sh', ['status'], fast)).rejects.toMatchObject({ name: 'OutputTruncated', message: expect.stringMatching(/truncated by SSM/) as unknown });
  });

  it('a survey cut off on one master is answered by the next', async () => {
    const { survey, tried } = await surveyCluster(client, bundle, [{ instanceId: I, member: 'etcd-a' }, { instanceId: I2, member: 'etcd-b' }], fast);
    expect(tried).toEqual([expect.stringMatching(/^etcd-a: unreadable survey: .*truncated by SSM/) as unknown]);
    expect(survey?.member).toBe('etcd-b');
    expect(survey?.members?.members).toHaveLength(3);
  });
});
