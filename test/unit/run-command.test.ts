/** SSM outcomes the sandbox does not produce on its own (aws-sdk-client-mock). */
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, InvocationDoesNotExist, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { readFileSync } from 'node:fs';
import { mockClient } from 'aws-sdk-client-mock';
import { join } from 'node:path';
import { runHostScript, ssmEtcdRunner } from '../../lib/aws/run-command';
import { ssmHosts } from '../../lib/aws/hosts';
import { argvOf, HostFailure } from '../../lib/host/commands';
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
    await expect(ssmHosts(() => client, bundle).run(I, { kind: 'member-status' }, fast)).rejects.toMatchObject({ name: 'HostFailure', kind: 'truncated', message: expect.stringMatching(/cut off by SSM/) as unknown });
  });

  it('a survey cut off on one master is answered by the next', async () => {
    const { survey, tried } = await surveyCluster(client, bundle, [{ instanceId: I, member: 'etcd-a' }, { instanceId: I2, member: 'etcd-b' }], fast);
    expect(tried).toEqual([expect.stringMatching(/^etcd-a: unreadable survey: .*truncated by SSM/) as unknown]);
    expect(survey?.member).toBe('etcd-b');
    expect(survey?.members?.members).toHaveLength(3);
  });
});

describe('the host port over SSM: a command in, a checked answer or a failure kind by exit code out', () => {
  const ssm = mockClient(SSMClient);
  const client = new SSMClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const hosts = ssmHosts(() => client, bundle);
  const status = { running: true, pid: 42, healthy: true, peerUrl: 'http://10.0.0.1:2380', clientUrl: 'http://10.0.0.1:2379', dataDir: '/var/lib/etcd/data', hasData: true, etcdVersion: '3.5.16', serverVersion: '3.5.16', clusterVersion: '3.5.0' };
  beforeEach(() => {
    ssm.reset();
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
  });
  const sentLine = () => (ssm.commandCalls(SendCommandCommand)[0]!.args[0].input.Parameters!.commands!).at(-1)!;

  it('renders the command as its script and arguments, and returns the checked answer', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: `noise\n${JSON.stringify(status)}\n` });
    await expect(hosts.run(I, { kind: 'member-status' }, fast)).resolves.toMatchObject({ running: true, pid: 42, clusterVersion: '3.5.0' });
    expect(sentLine()).toMatch(/etcd-member\.sh" 'status'$/);
    expect(ssm.commandCalls(SendCommandCommand)[0]!.args[0].input.Comment).toBe('quorum-keeper etcd-member.sh status');
  });

  it('names each failure by the script\'s exit code, never by its stderr', async () => {
    const cases: Array<[number, string]> = [[2, 'usage'], [3, 'blank'], [4, 'owner'], [5, 'no-device'], [6, 'failed'], [7, 'copy'], [8, 'corrupt'], [9, 'unverified'], [1, 'exit']];
    for (const [code, kind] of cases) {
      ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', ResponseCode: code, StandardErrorContent: 'trial restore failed: not a valid snapshot\nthe last line' });
      const err = await hosts.run(I, { kind: 'volume-inspect', volumeId: 'vol-0123456789abcdef0', cluster: 'prod', member: 'etcd-a' }, fast).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(HostFailure);
      expect(err).toMatchObject({ kind, exitCode: code, detail: 'the last line', command: 'etcd-mount.sh --inspect', instanceId: I });
    }
  });

  it('an unfinished command is tried once more only when asked (idempotent steps), and says so', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'TimedOut', ResponseCode: -1 });
    await expect(hosts.run(I, { kind: 'member-stop' }, fast)).rejects.toMatchObject({ kind: 'unfinished', detail: 'SSM command cmd-1 ended TimedOut' });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    ssm.resetHistory();
    const said: string[] = [];
    await expect(hosts.run(I, { kind: 'member-stop' }, { ...fast, retryUnfinished: true, onRetry: (d) => said.push(d) })).rejects.toMatchObject({ kind: 'unfinished' });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(2);
    expect(said).toEqual(['SSM command cmd-1 ended TimedOut; trying once more']);
  });

  it('an answer this version does not expect is a failure of kind "answer", not a crash later', async () => {
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: '{"peerUrl":"http://10.0.0.1:2380"}\n' });
    await expect(hosts.run(I, { kind: 'member-urls' }, fast)).rejects.toMatchObject({ kind: 'answer', detail: expect.stringMatching(/clientUrl/) as unknown });
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Success', ResponseCode: 0, StandardOutputContent: 'not json\n' });
    await expect(hosts.run(I, { kind: 'member-urls' }, fast)).rejects.toMatchObject({ kind: 'answer', detail: expect.stringMatching(/not JSON/) as unknown });
  });

  it('values reach the host as data: presigned URLs base64url-encoded, hostile values refused before SSM is called', async () => {
    const url = 'https://b.s3.amazonaws.com/k?X-Amz-Signature=abc&X-Amz-Security-Token=x%2By';
    expect(argvOf({ kind: 'snapshot-upload', workDir: '/var/lib/qk', file: 'snapshot-20261207T000000Z.db.zst', uploadUrl: url, headers: ['a: b'] }).args)
      .toEqual(['upload', '--work-dir', '/var/lib/qk', '--file', 'snapshot-20261207T000000Z.db.zst', '--upload-url-b64', Buffer.from(url).toString('base64url'), '--headers-b64', Buffer.from('a: b').toString('base64url')]);
    await expect(hosts.run(I, { kind: 'member-start', name: 'etcd-a; reboot', initialCluster: 'etcd-a=http://10.0.0.1:2380', state: 'existing' }, fast)).rejects.toThrow(/refusing host-script argument/);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});
