/**
 * The sandbox AWS endpoint with real SDK clients: SSM really runs the project's host scripts
 * on sandbox hosts backed by real etcd; the gaps moto leaves are filled as AWS behaves.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CompleteLifecycleActionCommand, DescribeAutoScalingGroupsCommand, DescribeAutoScalingInstancesCommand, PutLifecycleHookCommand, RecordLifecycleActionHeartbeatCommand } from '@aws-sdk/client-auto-scaling';
import { DetachVolumeCommand, AttachVolumeCommand, DescribeVolumesCommand, RunInstancesCommand, waitUntilVolumeAvailable, waitUntilVolumeInUse } from '@aws-sdk/client-ec2';
import { DeregisterTargetsCommand, DescribeTargetHealthCommand, RegisterTargetsCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DescribeInstanceInformationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { ssmEtcdRunner, runHostScript } from '../../lib/aws/run-command';
import { EtcdClient, hasNoLeader } from '../../lib/etcd';
import { surveyCluster, viewCluster } from '../support/survey';
import { writeLease } from '../../sandbox/apiserver';
import { destroyClients, SANDBOX_RUN, hostScripts, hostOk, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { waitFor } from '../../sandbox/ports';
import { makeTempDir, removeDir } from '../../sandbox/procs';
import { AWS_LATENCY, SANDBOX_LATENCY } from '../../sandbox/latency';
import { QuorumWatch } from '../../sandbox/quorum-watch';
import { Sandbox } from '../../sandbox/sandbox';
import { etcdInUse } from '../../sandbox/etcd-bin';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { HOST_PKI, SandboxPki } from '../../sandbox/pki';

jest.setTimeout(120_000);

describe('sandbox AWS with a real etcd control plane', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let cluster: SandboxCluster;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
  });
  afterAll(async () => {
    destroyClients(c);
    await sandbox?.stop();
  });
  beforeEach(async () => {
    await sandbox.reset();
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
  });

  it('runs etcdctl through a real SSM SendCommand on a sandbox host and returns the real member list', async () => {
    const a = cluster.members[0]!;
    const etcd = new EtcdClient(ssmEtcdRunner(c.ssm, hostScripts(), a.instanceId, SANDBOX_RUN), { endpoints: [a.clientUrl] });
    const list = await etcd.memberList();
    expect(list.members.map((m) => [m.name, m.peerUrls[0]]).sort()).toEqual(cluster.members.map((m) => [m.name, m.peerUrl]).sort());
    // Independent check: etcdctl run directly here prints the same IDs in hex.
    const direct = execFileSync('etcdctl', [`--endpoints=${a.clientUrl}`, ...SandboxPki.current().harnessEtcdctlFlags, 'member', 'list'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    for (const m of list.members) expect(direct).toContain(`${m.id}, started, ${m.name}`);
  });

  it('runs etcd as the systemd unit real masters use: the drop-in decides how and when; a member without quorum stays activating without holding its start; a killed etcd leaves the unit failed', async () => {
    const [a, b, c3] = cluster.members as [SandboxCluster['members'][0], SandboxCluster['members'][0], SandboxCluster['members'][0]];
    const unit = async (m: typeof a) => (await sandbox.host(m.instanceId).run(['systemctl is-active etcd.service; systemctl show -p MainPID --value etcd.service'], 10_000)).stdout.trim().split('\n');
    const hostA = sandbox.host(a.instanceId);
    expect(await unit(a)).toEqual(['active', String(hostA.etcdPid())]);
    const dropIn = readFileSync(join(hostA.root, 'etc/systemd/system/etcd.service.d/10-quorum-keeper.conf'), 'utf8');
    expect(dropIn).toMatch(/^ConditionPathExists=\/var\/lib\/etcd\/\.quorum-keeper-volume$/m);
    expect(dropIn).toMatch(new RegExp(`^ExecStart=\\n?[^]*^ExecStart=\\S+/etcd --config-file ${hostA.root}/etc/quorum-keeper/etcd\\.conf\\.yml$`, 'm'));
    expect(dropIn).toMatch(/^TimeoutStartSec=infinity$/m);

    // b and c stop: a restarted now cannot join (no quorum), so etcd never says READY.
    await hostOk(c, b.instanceId, 'etcd-member.sh', ['stop']);
    await hostOk(c, c3.instanceId, 'etcd-member.sh', ['stop']);
    expect((await unit(b))[0]).toBe('inactive');
    await hostOk(c, a.instanceId, 'etcd-member.sh', ['stop']);
    const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    const start = (m: typeof a) => hostOk(c, m.instanceId, 'etcd-member.sh', ['start', '--name', m.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing', '--token', cluster.token]);
    const t0 = Date.now();
    const alone = JSON.parse(await start(a)) as { running: boolean; healthy: boolean };
    expect(alone).toMatchObject({ running: true, healthy: false }); // its start returned (10 s of waiting for /health), not held by the unit
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect((await unit(a))[0]).toBe('activating');
    await start(b);
    await waitFor('a and b active (READY once they have quorum)', async () => ((await unit(a))[0] === 'active' && (await unit(b))[0] === 'active' ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    await start(c3);

    sandbox.host(c3.instanceId).killEtcd();
    await waitFor('the unit to turn failed', async () => ((await unit(c3))[0] === 'failed' ? true : undefined), { timeoutMs: 10_000, intervalMs: 100 });
    expect(JSON.parse(await hostOk(c, c3.instanceId, 'etcd-member.sh', ['status'])) as unknown).toMatchObject({ running: false, pid: null });
    expect(JSON.parse(await start(c3)) as unknown).toMatchObject({ running: true, healthy: true });
  });

  it('runs etcd with mutual TLS on client and peer URLs: https everywhere, and a client without a certificate of the cluster\'s CA is refused', async () => {
    const a = cluster.members[0]!;
    const list = await harnessEtcd([a.clientUrl]).memberList();
    expect(list.members.flatMap((m) => [...m.peerUrls, ...m.clientUrls]).every((u) => u.startsWith('https://127.0.0.1:'))).toBe(true);
    const plain = (args: string[]) => spawnSync('etcdctl', [`--endpoints=${a.clientUrl}`, '--dial-timeout=1s', '--command-timeout=2s', ...args, 'member', 'list'], { encoding: 'utf8', env: { PATH: process.env.PATH } });
    // No certificate: the TLS handshake fails (client-cert-auth); the CA alone is not enough either.
    expect(plain([]).status).not.toBe(0);
    expect(plain([`--cacert=${SandboxPki.current().caCert}`]).status).not.toBe(0);
    // A certificate from another CA (the host's peer certificate is of this CA, so it must work).
    const root = sandbox.host(a.instanceId).root;
    expect(plain([`--cacert=${SandboxPki.current().caCert}`, `--cert=${join(root, HOST_PKI.peerCert)}`, `--key=${join(root, HOST_PKI.peerKey)}`]).status).toBe(0);
    const foreign = makeTempDir('foreign-ca');
    try {
      execFileSync('openssl', ['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(foreign, 'k'), '-out', join(foreign, 'c'), '-days', '1', '-subj', '/CN=intruder', '-addext', 'extendedKeyUsage=clientAuth']);
      expect(plain([`--cacert=${SandboxPki.current().caCert}`, `--cert=${join(foreign, 'c')}`, `--key=${join(foreign, 'k')}`]).status).not.toBe(0);
    } finally {
      removeDir(foreign);
    }
    // The host's host.env carries the TLS settings every host script reads.
    expect(readFileSync(join(root, 'etc/quorum-keeper/host.env'), 'utf8')).toMatch(/^QK_ETCD_SCHEME=https$[\s\S]*^QK_ETCD_CLIENT_CERT=\/etc\/kubernetes\/pki\/etcd\/healthcheck-client\.crt$/m);
  });

  it('surveys the cluster in one SSM command: members, every status, health, alarms, Leases and served certificates', async () => {
    const [a] = cluster.members;
    const renewTime = new Date(Date.now() - 5_000);
    await writeLease(a!.clientUrl, 'kube-scheduler', { holderIdentity: 'master-a_1234', leaseDurationSeconds: 15, renewTime });
    const { peer, survey, tried } = await surveyCluster(c.ssm, hostScripts(), [{ instanceId: a!.instanceId, member: a!.name }], SANDBOX_RUN, ['kube-scheduler', 'kube-controller-manager'], { certs: true });
    expect(tried).toEqual([]);
    expect(peer?.member).toBe(a!.name);
    expect(survey?.errors).toEqual([]);
    expect(survey?.membersFrom).toBe('quorum');
    expect(survey?.members?.members.map((m) => m.name).sort()).toEqual(cluster.members.map((m) => m.name).sort());
    expect(survey?.status.statuses.map((s) => s.endpoint).sort()).toEqual(cluster.members.map((m) => m.clientUrl).sort());
    expect(survey?.status.unreachable).toEqual([]);
    expect(survey?.status.statuses.filter((s) => s.isLeader)).toHaveLength(1);
    expect(survey?.health.map((h) => h.healthy)).toEqual([true, true, true]);
    expect(survey?.alarms).toEqual([]);
    const sched = survey!.leases['kube-scheduler']!;
    expect(sched.httpStatus).toBe(200);
    expect(JSON.parse(sched.body)).toMatchObject({ kind: 'Lease', spec: { holderIdentity: 'master-a_1234', leaseDurationSeconds: 15 } });
    expect(survey!.leases['kube-controller-manager']!.httpStatus).toBe(404);
    // The certificate every member serves on its client and peer URL, read over TLS from this
    // master: the ones each master was given at boot (a year).
    expect(survey!.certs.map((x) => [x.member, x.kind, x.url]).sort()).toEqual(cluster.members.flatMap((m) => [[m.name, 'client', m.clientUrl], [m.name, 'peer', m.peerUrl]]).sort());
    for (const x of survey!.certs) expect((Date.parse(x.notAfter) - Date.now()) / 86_400_000).toBeGreaterThan(364);
    // The peer it hands back runs further etcd commands on the same master.
    expect((await peer!.etcd.memberList()).members).toHaveLength(3);
  });

  it('views members and every status in one SSM command; a member being replaced is not dialled at its old URL', async () => {
    const [a, b] = cluster.members;
    const healthy = await viewCluster(c.ssm, hostScripts(), a!.instanceId, SANDBOX_RUN);
    expect(healthy.members.members.map((m) => m.id).sort()).toEqual((await harnessEtcd([a!.clientUrl]).memberList()).members.map((m) => m.id).sort());
    expect(healthy.status.statuses.map((s) => s.endpoint).sort()).toEqual(cluster.members.map((m) => m.clientUrl).sort());
    expect(healthy.status.unreachable).toEqual([]);
    sandbox.host(b!.instanceId).killEtcd();
    const plain = await viewCluster(c.ssm, hostScripts(), a!.instanceId, SANDBOX_RUN);
    expect(plain.status.unreachable.map((u) => u.endpoint)).toEqual([b!.clientUrl]);
    // b is being replaced by a host at another peer URL: its old incarnation is not asked.
    const skipped = await viewCluster(c.ssm, hostScripts(), a!.instanceId, SANDBOX_RUN, { member: b!.name, peerUrl: 'http://127.0.0.9:2380' });
    expect(skipped.status.statuses.map((s) => s.endpoint).sort()).toEqual(cluster.members.filter((m) => m !== b).map((m) => m.clientUrl).sort());
    expect(skipped.status.unreachable).toEqual([]);
    expect(skipped.members.members).toHaveLength(3);
    // ...but it is asked when it already advertises the new URL (the replacement is done).
    const same = await viewCluster(c.ssm, hostScripts(), a!.instanceId, SANDBOX_RUN, { member: b!.name, peerUrl: b!.peerUrl });
    expect(same.status.unreachable.map((u) => u.endpoint)).toEqual([b!.clientUrl]);
    // A host whose etcd is down says so as a classified error.
    await expect(viewCluster(c.ssm, hostScripts(), b!.instanceId, SANDBOX_RUN)).rejects.toThrow(/etcd-query.sh view on i-\w+: .*etcd is not running on this host/);
  });

  it('survey with 2 of 3 members down: skips the dead masters, and the survivor reports no leader and unreadable Leases', async () => {
    const [a, b, c3] = cluster.members;
    sandbox.host(a!.instanceId).crash();
    sandbox.host(b!.instanceId).crash();
    // The survivor notices only after its election timeout (until then it still names the old leader).
    const survivor = harnessEtcd([c3!.clientUrl]);
    await waitFor('the survivor to lose its leader', async () => ((await survivor.endpointStatus({ cluster: false })).statuses.every(hasNoLeader) ? true : undefined));
    const { peer, survey, tried } = await surveyCluster(c.ssm, hostScripts(), cluster.members.map((m) => ({ instanceId: m.instanceId, member: m.name })), SANDBOX_RUN, ['kube-scheduler']);
    expect(tried).toEqual([`${a!.name}: SSM agent offline`, `${b!.name}: SSM agent offline`]);
    expect(peer?.member).toBe(c3!.name);
    // The member list without quorum: 3.4 answers etcdctl's from local state; 3.5's is linearizable
    // and fails, and the survivor's own view (its gateway, linearizable=false) stands in.
    expect(survey?.members?.members).toHaveLength(3);
    expect(survey?.membersFrom).toBe(etcdInUse().version.startsWith('3.4.') ? 'quorum' : 'local');
    expect(survey?.status.statuses.map((s) => [s.endpoint, hasNoLeader(s)])).toEqual([[c3!.clientUrl, true]]);
    expect(survey?.status.unreachable.map((u) => u.endpoint).sort()).toEqual([a!.clientUrl, b!.clientUrl].sort());
    expect(survey?.health.filter((h) => h.healthy)).toEqual([]);
    expect(survey?.leases['kube-scheduler']?.httpStatus).toBe(500);
  });

  it('the quorum watch: leadership moved ten times is no lost quorum (a voter caught mid-election is asked again); two members killed are, and are named', async () => {
    const all = harnessEtcd(cluster.members.map((m) => m.clientUrl));
    const moves = new QuorumWatch(sandbox).start();
    for (let i = 0; i < 10; i++) {
      const { statuses } = await all.endpointStatus({ cluster: false });
      const leader = statuses.find((s) => s.isLeader)!;
      await all.moveLeader(statuses.find((s) => !s.isLeader)!.memberId);
      expect((await all.endpointStatus({ cluster: false })).statuses.find((s) => s.isLeader)?.memberId).not.toBe(leader.memberId);
      await new Promise((r) => setTimeout(r, 180));
    }
    const moved = await moves.stop();
    expect(moved.belowQuorum).toEqual([]);
    expect(moved.minHealthy).toBeGreaterThanOrEqual(2);

    const [a, b] = cluster.members;
    const lost = new QuorumWatch(sandbox).start();
    sandbox.host(a!.instanceId).killEtcd();
    sandbox.host(b!.instanceId).killEtcd();
    await new Promise((r) => setTimeout(r, 3000));
    const q = await lost.stop();
    expect(q.belowQuorum.length).toBeGreaterThan(0);
    // The survivor lists the members from its own view (linearizable=false, on 3.4 and 3.5 alike),
    // so the samples below quorum name the two that went silent; a sample in which no member
    // answered the listing at all counts as lost too, but names nobody.
    const named = q.belowQuorum.filter((s) => s.voters > 0);
    expect(named.length).toBeGreaterThan(0);
    expect(named.at(-1)!.silent.sort()).toEqual([a!.name, b!.name].sort());
  });

  it('reports a failing script as Failed with its real exit code and stderr', async () => {
    const a = cluster.members[0]!;
    const res = await runHostScript(c.ssm, hostScripts(), a.instanceId, 'etcd-mount.sh', ['--volume-id', 'vol-bad', '--cluster', 'prod', '--member', 'etcd-a'], SANDBOX_RUN);
    expect(res).toMatchObject({ status: 'Failed', exitCode: 2 });
    expect(res.stderr).toMatch(/invalid volume ID/);
  });

  it('knows which SSM agents are online and refuses commands to a dead instance', async () => {
    const [a, b] = cluster.members;
    const online = await c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [a!.instanceId, b!.instanceId] }] }));
    expect(online.InstanceInformationList?.map((i) => [i.InstanceId, i.PingStatus]).sort()).toEqual([[a!.instanceId, 'Online'], [b!.instanceId, 'Online']].sort());
    sandbox.host(b!.instanceId).crash();
    const after = await c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [b!.instanceId] }] }));
    expect(after.InstanceInformationList?.[0]?.PingStatus).toBe('ConnectionLost');
    await expect(c.ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [b!.instanceId], Parameters: { commands: ['true'] } })))
      .rejects.toMatchObject({ name: 'InvalidInstanceId' });
  });

  it('makes target health follow each host apiserver /readyz (which follows its etcd)', async () => {
    const health = async (): Promise<Record<string, string | undefined>> => {
      const out = await c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: cluster.targetGroupArn }));
      return Object.fromEntries((out.TargetHealthDescriptions ?? []).map((d) => [d.Target?.Id ?? '', d.TargetHealth?.State]));
    };
    expect(Object.values(await health())).toEqual(['healthy', 'healthy', 'healthy']);
    const b = cluster.members[1]!;
    await hostOk(c, b.instanceId, 'etcd-member.sh', ['stop']);
    expect((await health())[b.instanceId]).toBe('unhealthy');
    expect((await health())[cluster.members[0]!.instanceId]).toBe('healthy');
  });

  it('models lifecycle actions: CONTINUE recorded once, a second completion refused, heartbeats counted', async () => {
    const a = cluster.members[0]!;
    const event = sandbox.lifecycle.begin({ asg: a.asg, hook: 'qk-launch', instanceId: a.instanceId, transition: 'autoscaling:EC2_INSTANCE_LAUNCHING' });
    expect(event).toMatchObject({ source: 'aws.autoscaling', 'detail-type': 'EC2 Instance-launch Lifecycle Action', detail: { EC2InstanceId: a.instanceId, AutoScalingGroupName: a.asg } });
    const ids = { AutoScalingGroupName: a.asg, LifecycleHookName: 'qk-launch', LifecycleActionToken: event.detail.LifecycleActionToken };
    await c.asg.send(new RecordLifecycleActionHeartbeatCommand(ids));
    await c.asg.send(new CompleteLifecycleActionCommand({ ...ids, LifecycleActionResult: 'CONTINUE' }));
    await expect(c.asg.send(new CompleteLifecycleActionCommand({ ...ids, LifecycleActionResult: 'ABANDON' }))).rejects.toMatchObject({ name: 'ValidationError' });
    expect(sandbox.lifecycle.results(a.instanceId)).toEqual(['CONTINUE']);
    expect(sandbox.lifecycle.calls.filter((x) => x.kind === 'heartbeat' && x.accepted)).toHaveLength(1);
  });

  it('models hook expiry as AWS does: a heartbeat restarts the timeout; once it passes, the DefaultResult is applied and the instance proceeds (terminates, the group launches a replacement through its launch hook)', async () => {
    const a = cluster.members[0]!;
    // 3 s (AWS's shortest is 30 s; moto accepts less): only to see the model expire quickly.
    await c.asg.send(new PutLifecycleHookCommand({ AutoScalingGroupName: a.asg, LifecycleHookName: 'quorum-keeper-terminate', LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING', HeartbeatTimeout: 3, DefaultResult: 'CONTINUE' }));
    const token = (await sandbox.asgModel.begin(a.asg, a.instanceId, 'autoscaling:EC2_INSTANCE_TERMINATING'))!;
    expect(sandbox.asgModel.undelivered.map((e) => e.detail.LifecycleActionToken)).toEqual([token]);
    const state = async () => (await c.asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [a.instanceId] }))).AutoScalingInstances?.[0]?.LifecycleState;
    expect(await state()).toBe('Terminating:Wait');
    await new Promise((r) => setTimeout(r, 2000));
    await c.asg.send(new RecordLifecycleActionHeartbeatCommand({ AutoScalingGroupName: a.asg, LifecycleHookName: 'quorum-keeper-terminate', InstanceId: a.instanceId }));
    await new Promise((r) => setTimeout(r, 2000));
    expect(sandbox.lifecycle.expired()).toEqual([]); // 4 s after the start, 2 s after the heartbeat
    const settled = await sandbox.asgModel.settled(token);
    expect(settled).toMatchObject({ result: 'CONTINUE', by: 'heartbeat-timeout' });
    expect(sandbox.lifecycle.expired()).toEqual([expect.objectContaining({ instanceId: a.instanceId, result: 'CONTINUE', error: 'heartbeat-timeout' })]);
    expect((await sandbox.describeInstance(a.instanceId))?.State?.Name).toBe('terminated');
    // The group's replacement waits in Pending:Wait for its launch hook, its event undelivered (no Lambda wired).
    const launch = sandbox.asgModel.undelivered.find((e) => e.detail.LifecycleTransition === 'autoscaling:EC2_INSTANCE_LAUNCHING');
    expect(launch?.detail.AutoScalingGroupName).toBe(a.asg);
    expect((await c.asg.send(new DescribeAutoScalingInstancesCommand({ InstanceIds: [launch!.detail.EC2InstanceId] }))).AutoScalingInstances?.[0]?.LifecycleState).toBe('Pending:Wait');
  });

  it('never shows a master InService between its terminate action and the replacement\'s launch action (Terminating:Proceed, then Pending, as AWS does; moto shows InService)', async () => {
    const a = cluster.members[0]!;
    const token = (await sandbox.asgModel.begin(a.asg, a.instanceId, 'autoscaling:EC2_INSTANCE_TERMINATING'))!;
    const seen: string[] = [];
    const sample = async () => {
      const g = await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [a.asg] }));
      const line = (g.AutoScalingGroups?.[0]?.Instances ?? []).map((i) => `${i.InstanceId === a.instanceId ? 'old' : 'new'}:${i.LifecycleState}`).join(' ');
      if (seen[seen.length - 1] !== line) seen.push(line);
    };
    await sample();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) await sample();
    })();
    await c.asg.send(new CompleteLifecycleActionCommand({ AutoScalingGroupName: a.asg, LifecycleHookName: 'quorum-keeper-terminate', LifecycleActionToken: token, LifecycleActionResult: 'CONTINUE' }));
    await waitFor('the replacement in Pending:Wait', () => Promise.resolve(seen.some((x) => x.includes('new:Pending:Wait')) ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
    sampling = false;
    await sampler;
    expect(seen.filter((x) => x.includes('InService'))).toEqual([]);
    expect(seen[0]).toBe('old:Terminating:Wait');
  });

  it('makes an EBS volume appear in and vanish from the host as moto attaches and detaches it', async () => {
    const a = cluster.members[0]!;
    const byId = join(sandbox.host(a.instanceId).root, 'dev/disk/by-id');
    const link = `nvme-Amazon_Elastic_Block_Store_${a.volumeId.replace('-', '')}`;
    expect(readdirSync(byId)).toContain(link);
    await hostOk(c, a.instanceId, 'etcd-member.sh', ['stop']);
    await c.ec2.send(new DetachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId }));
    await waitUntilVolumeAvailable({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
    expect(existsSync(join(byId, link))).toBe(false);
    // Mounting now fails cleanly: no device (after waiting a second for one to appear).
    sandbox.host(a.instanceId).extraEnv.QK_DEVICE_WAIT_SEC = '1';
    const res = await runHostScript(c.ssm, hostScripts(), a.instanceId, 'etcd-mount.sh', ['--volume-id', a.volumeId, '--cluster', 'prod', '--member', 'etcd-a'], SANDBOX_RUN);
    delete sandbox.host(a.instanceId).extraEnv.QK_DEVICE_WAIT_SEC;
    expect(res.exitCode).toBe(5);
    await c.ec2.send(new AttachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId, Device: '/dev/xvdf' }));
    await waitUntilVolumeInUse({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
    const mounted = JSON.parse(await hostOk(c, a.instanceId, 'etcd-mount.sh', ['--volume-id', a.volumeId, '--cluster', 'prod', '--member', 'etcd-a'])) as { hasData: boolean; formatted: boolean };
    expect(mounted).toMatchObject({ hasData: true, formatted: false });
    await waitFor('etcd-a back', async () => {
      const out = await hostOk(c, a.instanceId, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(','), '--initial-cluster-state', 'existing', '--token', cluster.token]);
      return (JSON.parse(out) as { healthy: boolean }).healthy ? true : undefined;
    });
  });

  it('under the AWS latency profile: an attachment reads attaching first; a booting instance is unknown to SSM until its agent registers; a new target is initial (registration, then its first checks) before healthy', async () => {
    // AWS's figures, shortened: attaching 1.5 s, agent 2 s, registration 1.5 s, checks 10 s × 3 × 0.1.
    sandbox.useLatency({ ...AWS_LATENCY, attachMs: 1500, agentOnlineMs: 2000, registrationMs: 1500, healthCheckScale: 0.1 });
    try {
      const a = cluster.members[0]!;
      await hostOk(c, a.instanceId, 'etcd-member.sh', ['stop']);
      await c.ec2.send(new DetachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId }));
      await waitUntilVolumeAvailable({ client: c.ec2, maxWaitTime: 30, minDelay: 1 }, { VolumeIds: [a.volumeId] });
      await c.ec2.send(new AttachVolumeCommand({ VolumeId: a.volumeId, InstanceId: a.instanceId, Device: '/dev/xvdf' }));
      const attachment = async () => (await c.ec2.send(new DescribeVolumesCommand({ VolumeIds: [a.volumeId] }))).Volumes?.[0]?.Attachments?.[0]?.State;
      expect(await attachment()).toBe('attaching');
      await waitFor('the attachment to complete', async () => ((await attachment()) === 'attached' ? true : undefined), { timeoutMs: 10_000, intervalMs: 200 });

      const states: string[] = [];
      const health = async () => {
        const d = (await c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: cluster.targetGroupArn, Targets: [{ Id: a.instanceId, Port: 6443 }] }))).TargetHealthDescriptions?.[0]?.TargetHealth;
        const state = `${d?.State}${d?.Reason ? `:${d.Reason}` : ''}`;
        if (states.at(-1) !== state) states.push(state);
        return state;
      };
      await c.elb.send(new DeregisterTargetsCommand({ TargetGroupArn: cluster.targetGroupArn, Targets: [{ Id: a.instanceId, Port: 6443 }] }));
      await hostOk(c, a.instanceId, 'etcd-mount.sh', ['--volume-id', a.volumeId, '--cluster', 'prod', '--member', 'etcd-a']);
      await hostOk(c, a.instanceId, 'etcd-member.sh', ['start', '--name', 'etcd-a', '--initial-cluster', cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(','), '--initial-cluster-state', 'existing', '--token', cluster.token]);
      await c.elb.send(new RegisterTargetsCommand({ TargetGroupArn: cluster.targetGroupArn, Targets: [{ Id: a.instanceId, Port: 6443 }] }));
      await waitFor('the new target to turn healthy', async () => ((await health()) === 'healthy' ? true : undefined), { timeoutMs: 20_000, intervalMs: 200 });
      expect(states).toEqual(['initial:Elb.RegistrationInProgress', 'initial:Elb.InitialHealthChecking', 'healthy']);

      const run = await c.ec2.send(new RunInstancesCommand({ ImageId: 'ami-12c6146b', MinCount: 1, MaxCount: 1, InstanceType: 't3.medium' }));
      const fresh = run.Instances![0]!.InstanceId!;
      await sandbox.bootHost(fresh);
      const listed = async () => (await c.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [fresh] }] }))).InstanceInformationList ?? [];
      expect(await listed()).toEqual([]);
      await expect(c.ssm.send(new SendCommandCommand({ DocumentName: 'AWS-RunShellScript', InstanceIds: [fresh], Parameters: { commands: ['true'] } }))).rejects.toThrow(/not in a valid state/);
      await waitFor('the agent to register', async () => ((await listed())[0]?.PingStatus === 'Online' ? true : undefined), { timeoutMs: 10_000, intervalMs: 250 });
    } finally {
      sandbox.useLatency(SANDBOX_LATENCY);
    }
  });
});
