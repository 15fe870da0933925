/**
 * The watchdog probe Lambda entry (middy, Powertools logger + EMF metrics, host scripts as
 * text) against the sandbox: real etcd members, Leases served by each master's API server
 * stand-in from etcd, SSM through the sandbox.
 */
import type { Context } from 'aws-lambda';
import { hasNoLeader } from '../../lib/etcd';
import { CreateQueueCommand, SQSClient } from '@aws-sdk/client-sqs';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';
import { AlarmEvaluator, datapointsFromEmf, deployedAlarms } from '../../sandbox/alarms';
import { writeLease } from '../../sandbox/apiserver';
import { destroyClients, hostOk, hostScripts, provisionCluster, SANDBOX_RUN, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { type Control, destroyControl, provisionControl, sandboxLambdaEnv, sandboxProbeDeps } from '../../sandbox/control';
import { invokeAsync, snsEvent } from '../../sandbox/lambda';
import { waitFor } from '../../sandbox/ports';
import { Sandbox } from '../../sandbox/sandbox';
import { captureStdout } from '../support/capture';
import { SlackStandIn } from '../../sandbox/slack';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { SandboxPki } from '../../sandbox/pki';
import { surveyCluster } from '../support/survey';
import { probeCluster } from '../../lib/flows/probe';

jest.setTimeout(180_000);

const context = { getRemainingTimeInMillis: () => 50_000, functionName: 'probe', awsRequestId: 'test' } as unknown as Context;
type Handler = (event: unknown, ctx: Context) => Promise<{ clusters: Array<{ cluster: string; healthy: boolean; problems: string[]; error?: string }> }>;
type Emf = Record<string, unknown> & { _aws: { CloudWatchMetrics: Array<{ Dimensions: string[][] }> } };

describe('probe handler', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let cluster: SandboxCluster;
  let handler: Handler;
  let notifier: (event: unknown) => Promise<unknown>;
  let slack: SlackStandIn;
  let sqs: SQSClient;
  let dlq: string;
  let emitted: string[] = [];
  let restoreWrite: (() => void) | null = null;

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    ctl = await provisionControl(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    slack = await SlackStandIn.start();
    const ssm = new SSMClient(sandbox.clientConfig());
    await ssm.send(new PutParameterCommand({ Name: '/quorum-keeper/slack-webhook', Type: 'SecureString', Value: slack.url }));
    ssm.destroy();
    sqs = new SQSClient(sandbox.clientConfig());
    dlq = (await sqs.send(new CreateQueueCommand({ QueueName: 'notifier-dlq' }))).QueueUrl!;
    Object.assign(process.env, {
      ...sandboxLambdaEnv(sandbox, ctl),
      QK_SLACK_WEBHOOK_PARAMETER: '/quorum-keeper/slack-webhook', QK_SLACK_RETRY_BASE_MS: '20',
    });
    handler = (await import('../../functions/probe')).handler;
    notifier = (await import('../../functions/notifier')).handler as unknown as (event: unknown) => Promise<unknown>;
    const captured = captureStdout();
    emitted = captured.lines;
    restoreWrite = captured.restore;
  });
  afterAll(async () => {
    restoreWrite?.();
    await slack?.stop();
    sqs?.destroy();
    destroyControl(ctl);
    destroyClients(c);
    await sandbox?.stop();
  });

  const probe = async () => {
    emitted.length = 0;
    const out = await handler({ 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} }, context);
    const emf = emitted.filter((l) => l.includes('"_aws"')).map((l) => JSON.parse(l) as Emf);
    const cluster = emf.find((e) => e.EtcdHasLeader !== undefined || e.FlowFailures !== undefined);
    const lease = (component: string) => emf.find((e) => e.Component === component)?.LeaseStaleSeconds;
    return { out: out.clusters[0]!, cluster, lease, lines: [...emitted] };
  };
  // The surviving member notices a lost quorum only after its election timeout.
  const survivorLosesLeader = () => {
    const survivor = harnessEtcd([cluster.members[2]!.clientUrl]);
    return waitFor('the survivor to lose its leader', async () => ((await survivor.endpointStatus({ cluster: false })).statuses.every(hasNoLeader) ? true : undefined));
  };
  const renewAll = async (ageSec = 2) => {
    const renewTime = new Date(Date.now() - ageSec * 1000);
    await writeLease(cluster.members[0]!.clientUrl, 'kube-controller-manager', { holderIdentity: 'master-a_7f3c', leaseDurationSeconds: 15, renewTime });
    await writeLease(cluster.members[0]!.clientUrl, 'kube-scheduler', { holderIdentity: 'master-b_91d2', leaseDurationSeconds: 15, renewTime });
  };

  it('a healthy cluster: leader, 3 healthy members, margin 1, fresh Leases — as metrics per cluster and component', async () => {
    await renewAll();
    const { out, cluster: m, lease } = await probe();
    expect(out).toEqual({ cluster: 'prod', healthy: true, problems: [] });
    expect(m).toMatchObject({ Cluster: 'prod', service: 'probe', EtcdHasLeader: 1, EtcdHealthyMembers: 3, EtcdQuorumMargin: 1, EtcdLeaderChanges: 0, FlowFailures: 0 });
    expect(m!.EtcdDbSizeRatio).toBeGreaterThan(0);
    expect(lease('kube-scheduler')).toBeLessThan(30);
    expect(lease('kube-controller-manager')).toBeLessThan(30);
  });

  it('a kube-scheduler Lease not renewed for 2 minutes: "leader election stalled", naming the component and the last holder', async () => {
    await renewAll();
    await writeLease(cluster.members[0]!.clientUrl, 'kube-scheduler', { holderIdentity: 'master-c_55aa', leaseDurationSeconds: 15, renewTime: new Date(Date.now() - 120_000) });
    const { out, lease } = await probe();
    expect(out.healthy).toBe(false);
    expect(out.problems).toEqual([expect.stringMatching(/^kube-scheduler leader election stalled: Lease last renewed 1[23]\d s ago by master-c_55aa \(lease 15 s\)$/)]);
    expect(lease('kube-scheduler')).toBeGreaterThanOrEqual(120);
    expect(lease('kube-controller-manager')).toBeLessThan(30);
  });

  it('two of three members down: no leader (and the Leases cannot be read); back up: healthy again, the elections counted', async () => {
    await renewAll();
    await probe(); // remembers the current raft term
    const [a, b] = cluster.members;
    await hostOk(c, a!.instanceId, 'etcd-member.sh', ['stop']);
    await hostOk(c, b!.instanceId, 'etcd-member.sh', ['stop']);
    await survivorLosesLeader();
    const down = await probe();
    expect(down.out.healthy).toBe(false);
    expect(down.out.problems[0]).toMatch(/^etcd has no leader \(0\/3 voters healthy, quorum 2\)/);
    expect(down.cluster).toMatchObject({ EtcdHasLeader: 0, EtcdHealthyMembers: 0 });
    expect(down.lease('kube-scheduler')).toBeUndefined();

    const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const m of [a!, b!]) {
      await hostOk(c, m.instanceId, 'etcd-member.sh', ['start', '--name', m.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing', '--token', cluster.token]);
    }
    await renewAll();
    const up = await probe();
    expect(up.out).toEqual({ cluster: 'prod', healthy: true, problems: [] });
    expect(up.cluster).toMatchObject({ EtcdHasLeader: 1, EtcdHealthyMembers: 3, EtcdQuorumMargin: 1 });
    expect(up.cluster!.EtcdLeaderChanges).toBeGreaterThanOrEqual(1);
  });

  it('kill 2 of 3 → through the deployed alarms exactly one Slack message (cluster, next step); restart → one recovery message', async () => {
    // The per-minute alarms as deployed (the hourly backup alarm is not ticked here), evaluated
    // over the probe's EMF records, their SNS messages delivered to the notifier as Lambda would.
    const alarms = Object.values(await deployedAlarms(['prod'])).filter((a) => a.Period === 60);
    const evaluator = new AlarmEvaluator(alarms, async (message) => {
      await invokeAsync(notifier, snsEvent(ctl.topicArn, message), { dlq: { sqs, queueUrl: dlq } });
    });
    const tick = async () => evaluator.tick(datapointsFromEmf((await probe()).lines));
    slack.reset();
    await renewAll();
    await tick(); // new alarms: INSUFFICIENT_DATA → OK, which is not news
    expect(slack.posts).toEqual([]);

    const [a, b] = cluster.members;
    await hostOk(c, a!.instanceId, 'etcd-member.sh', ['stop']);
    await hostOk(c, b!.instanceId, 'etcd-member.sh', ['stop']);
    await survivorLosesLeader();
    await tick();
    await tick(); // still down a minute later: no second message
    expect(slack.delivered()).toHaveLength(1);
    const alarm = slack.delivered()[0]!.payload;
    expect(alarm.text).toMatch(/^\[CRITICAL\] ALARM: quorum-keeper-sandbox-prod-no-leader — cluster prod .*etcd of prod has no leader.* Next: quorum-keeper status --cluster prod/);
    expect([...evaluator.states].filter(([, s]) => s === 'ALARM').map(([n]) => n)).toEqual(['quorum-keeper-sandbox-prod-no-leader']);

    const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
    for (const m of [a!, b!]) {
      await hostOk(c, m.instanceId, 'etcd-member.sh', ['start', '--name', m.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing', '--token', cluster.token]);
    }
    await renewAll();
    await tick();
    expect(slack.delivered()).toHaveLength(2);
    expect(slack.delivered()[1]!.payload.text).toMatch(/^\[RECOVERED\] Recovered: quorum-keeper-sandbox-prod-no-leader — cluster prod/);
    expect(slack.posts).toHaveLength(2);
  });

  it('a kube-scheduler Lease left stale → one Slack message "leader election stalled" naming the component and the last holder', async () => {
    const alarms = Object.values(await deployedAlarms(['prod'])).filter((a) => a.Period === 60);
    const evaluator = new AlarmEvaluator(alarms, async (message) => {
      await invokeAsync(notifier, snsEvent(ctl.topicArn, message), { dlq: { sqs, queueUrl: dlq } });
    });
    const tick = async () => evaluator.tick(datapointsFromEmf((await probe()).lines));
    await renewAll();
    await tick();
    slack.reset();
    // kube-scheduler's last renewal was by master-c_55aa, 2 minutes ago, and nobody renews it since.
    await writeLease(cluster.members[0]!.clientUrl, 'kube-scheduler', { holderIdentity: 'master-c_55aa', leaseDurationSeconds: 15, renewTime: new Date(Date.now() - 120_000) });
    await tick();
    await tick(); // 2 minutes above 30 s
    await tick();
    expect(slack.delivered()).toHaveLength(1);
    expect(slack.delivered()[0]!.payload.text).toMatch(
      /^\[CRITICAL\] ALARM: quorum-keeper-sandbox-prod-lease-kube-scheduler — cluster prod .*kube-scheduler leader election stalled on prod.* Last holder: master-c_55aa, last renewed 20\d\d-.* Next: check the kube-scheduler pods/);
    await renewAll();
    await tick();
    expect(slack.delivered()).toHaveLength(2);
    expect(slack.delivered()[1]!.payload.text).toMatch(/^\[RECOVERED\] Recovered: quorum-keeper-sandbox-prod-lease-kube-scheduler/);
  });

  it('certificates: all fresh → a year, no problem; etcd-b\'s peer certificate renewed for 10 days (etcd not restarted) → a warning naming it, EtcdCertDaysLeft ≈ 10, one cert-expiry message; renewed for a year → recovered', async () => {
    const [a, b] = cluster.members;
    const host = sandbox.host(b!.instanceId);
    const renewPeerB = (days: number) => SandboxPki.current().renewHost(host.root, { hostname: b!.instanceId, ip: '127.0.0.1', cert: 'peer', days });
    const daysLeft = (iso: string) => (Date.parse(iso) - Date.now()) / 86_400_000;
    // The probe flow the handler runs, for the whole judgement (the handler returns the summaries).
    const judged = async () => (await probeCluster(sandboxProbeDeps(c, ctl), 'prod', { components: ['kube-controller-manager', 'kube-scheduler'], quotaBytes: 2 * 1024 ** 3 })).health;
    const survey = async () => (await surveyCluster(c.ssm, hostScripts(), [{ instanceId: a!.instanceId, member: a!.name }], SANDBOX_RUN, [], { certs: true })).survey!;
    // The alarm as deployed. Its period is an hour: one tick here stands for an hour of probes.
    const alarm = Object.values(await deployedAlarms(['prod'])).find((x) => x.MetricName === 'EtcdCertDaysLeft')!;
    expect(alarm).toMatchObject({
      AlarmName: 'quorum-keeper-sandbox-prod-cert-expiry', Dimensions: [{ Name: 'Cluster', Value: 'prod' }, { Name: 'service', Value: 'probe' }],
      Statistic: 'Minimum', Period: 3600, EvaluationPeriods: 1, Threshold: 30, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'notBreaching',
    });
    const evaluator = new AlarmEvaluator([alarm], async (message) => {
      await invokeAsync(notifier, snsEvent(ctl.topicArn, message), { dlq: { sqs, queueUrl: dlq } });
    });
    await renewAll();
    slack.reset();

    const fresh = await probe();
    expect(fresh.out).toEqual({ cluster: 'prod', healthy: true, problems: [] });
    const h0 = await judged();
    expect(h0.certificates.map((x) => `${x.member} ${x.kind}`).sort()).toEqual(cluster.members.flatMap((m) => [`${m.name} client`, `${m.name} peer`]).sort());
    expect(h0.certDaysLeft).toBeGreaterThanOrEqual(364.9);
    expect(h0.certDaysLeft).toBeLessThanOrEqual(365);
    expect(h0.problems).toEqual([]);
    expect(fresh.cluster!.EtcdCertDaysLeft).toBe(h0.certDaysLeft);
    await evaluator.tick(datapointsFromEmf(fresh.lines)); // INSUFFICIENT_DATA → OK: not news
    expect(slack.posts).toEqual([]);

    const pid = host.etcdPid();
    await renewPeerB(10);
    try {
      // What etcd-b serves changed at once, without a restart: etcd reads the files per handshake.
      const s = await survey();
      expect(s.errors).toEqual([]);
      const served = Object.fromEntries(s.certs.map((x) => [`${x.member} ${x.kind}`, daysLeft(x.notAfter)]));
      expect(served[`${b!.name} peer`]).toBeGreaterThan(9.9);
      expect(served[`${b!.name} peer`]).toBeLessThanOrEqual(10);
      for (const [k, d] of Object.entries(served)) if (k !== `${b!.name} peer`) expect({ k, d: d > 364 }).toEqual({ k, d: true });
      expect(host.etcdPid()).toBe(pid);

      const warn = await probe();
      expect(warn.out.healthy).toBe(false);
      expect(warn.out.problems).toEqual([expect.stringMatching(new RegExp(`^etcd ${b!.name}'s peer certificate expires 20\\d\\d-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(in 9 d\\)$`))]);
      const h = await judged();
      expect(h.problems).toEqual([expect.objectContaining({ code: 'cert-expiry', severity: 'warning', subject: b!.name, action: expect.stringMatching(/^Renew it on etcd-b's master: `kubeadm certs renew etcd-peer`/) as string })]);
      expect(h.certificates[0]).toMatchObject({ member: b!.name, kind: 'peer', url: b!.peerUrl, daysLeft: 9.9 });
      expect(h.certDaysLeft).toBe(9.9);
      expect(warn.cluster!.EtcdCertDaysLeft).toBe(9.9); // the minimum over the six certificates
      // Through the deployed alarm: one message, naming the cluster and the next step.
      await evaluator.tick(datapointsFromEmf(warn.lines));
      await evaluator.tick(datapointsFromEmf((await probe()).lines)); // an hour later, still: no second message
      expect(slack.delivered()).toHaveLength(1);
      expect(slack.delivered()[0]!.payload.text).toMatch(
        /^\[CRITICAL\] ALARM: quorum-keeper-sandbox-prod-cert-expiry — cluster prod .*serves a certificate \(client or peer\) that expires within 30 days.* Next: quorum-keeper status --cluster prod names the member/);
    } finally {
      await renewPeerB(365);
    }
    const back = await probe();
    expect(back.out).toEqual({ cluster: 'prod', healthy: true, problems: [] });
    expect(back.cluster!.EtcdCertDaysLeft).toBeGreaterThanOrEqual(364.9);
    await evaluator.tick(datapointsFromEmf(back.lines));
    expect(slack.delivered()).toHaveLength(2);
    expect(slack.delivered()[1]!.payload.text).toMatch(/^\[RECOVERED\] Recovered: quorum-keeper-sandbox-prod-cert-expiry — cluster prod/);
  });

  it('refuses a malformed request before touching anything', async () => {
    await expect(handler({ clusters: ['prod`reboot`'] }, context)).rejects.toThrow(/invalid probe request: clusters.0: must be a cluster name/);
  });
});
