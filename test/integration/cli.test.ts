/**
 * The operator CLI against the sandbox (in-process, real SDK clients through --endpoint):
 * exit codes, human and --json output, and that a restore never starts without consent.
 */
import { sandboxCli } from '../support/cli';
import { hasNoLeader } from '../../lib/etcd';
import { destroyClients, hostOk, provisionCluster, type SandboxClients, sandboxClients, type SandboxCluster } from '../../sandbox/cluster';
import { type BackupTarget, type Control, destroyBackups, destroyControl, provisionBackups, provisionControl } from '../../sandbox/control';
import { waitFor } from '../../sandbox/ports';
import { killMaster, memberOf } from '../../sandbox/scenario';
import { DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { Sandbox } from '../../sandbox/sandbox';
import { writerKit } from '../support/writers';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { etcdInUse } from '../../sandbox/etcd-bin';
import { SandboxPki } from '../../sandbox/pki';

jest.setTimeout(120_000);

describe('quorum-keeper CLI', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let b: BackupTarget;
  let ctl: Control;
  let cluster: SandboxCluster;
  const writer = writerKit(() => sandbox);

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    b = await provisionBackups(sandbox);
    ctl = await provisionControl(sandbox);
    cluster = await provisionCluster(sandbox, c, { name: 'prod' });
  });
  afterAll(async () => {
    await writer.stopAll();
    writer.report();
    destroyBackups(b);
    destroyControl(ctl);
    destroyClients(c);
    await sandbox?.stop();
  });

  const cli = sandboxCli(() => sandbox, () => ['--bucket', b.store.bucket]);

  it('backup, then backups list (human and --json)', async () => {
    const r = await cli(['backup', '--cluster', 'prod']);
    expect(r.err).toMatch(/✓ snapshot: revision \d+[^]*✓ verify: trial restore passed/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^backed up prod: s3:\/\/quorum-keeper-backups\/etcd-backups\/prod\/\d{8}T\d{6}Z-etcd-[abc]\.db\.(zst|gz) \(revision \d+/);
    const human = await cli(['backups', 'list', '--cluster', 'prod']);
    expect(human.out.split('\n')[0]).toMatch(/^TAKEN \(UTC\)\s+AGE\s+MEMBER\s+SIZE\s+KEY$/);
    const json = JSON.parse((await cli(['backups', 'list', '--cluster', 'prod', '--json'])).out) as Array<{ key: string; member: string; ageSec: number }>;
    expect(json).toHaveLength(1);
    expect(json[0]!.ageSec).toBeLessThan(60);
  });

  it('status: a healthy cluster prints the table and exits 0; one etcd down → DEGRADED, the reasons, exit 5; --json is stable', async () => {
    const ok = await cli(['status', '--cluster', 'prod']);
    expect(ok.code).toBe(0);
    const lines = ok.out.split('\n');
    // Each member's etcd version, and the cluster version (3.5.16 members run a cluster at 3.5.0).
    const v = etcdInUse().version;
    const clusterVersion = v.replace(/\.\d+$/, '.0');
    expect(lines[0]).toMatch(new RegExp(`^cluster prod: HEALTHY — etcd leader etcd-[abc], 3/3 voters healthy \\(quorum 2, margin 1\\), cluster version ${clusterVersion.replace(/\./g, '\\.')}; newest backup \\d+ min old \\(etcd-backups/prod/`));
    // The certificates the members serve: a year, the earliest named.
    expect(lines[0]).toMatch(/; certificates: earliest expires in 36[45] d \(etcd-[abc] (client|peer)\)$/);
    expect(lines[2]).toMatch(/^MEMBER\s+AZ\s+ASG\s+INSTANCE\s+LIFECYCLE\s+VOLUME\s+ATTACHED\s+ETCD\s+VERSION\s+RAFT LAG\s+LB$/);
    for (const m of cluster.members) {
      expect(ok.out).toMatch(new RegExp(`^${m.name}\\s+${m.az}\\s+\\S+\\s+${m.instanceId}\\s+InService\\s+${m.volumeId}\\s+yes\\s+(leader|follower)\\s+${v.replace(/\./g, '\\.')}\\s+\\d+\\s+healthy$`, 'm'));
    }

    const b2 = cluster.members[1]!;
    const etcdA = harnessEtcd([cluster.members[0]!.clientUrl]);
    const bId = (await etcdA.memberList()).members.find((m) => m.name === b2.name)!.id;
    await hostOk(c, b2.instanceId, 'etcd-member.sh', ['stop']);
    // If etcd-b led, the other two elect a new leader within an election timeout: wait for it.
    await waitFor('a leader other than etcd-b', async () => {
      const st = (await etcdA.endpointStatus({ cluster: false })).statuses[0];
      return st && !hasNoLeader(st) && st.leader !== bId ? true : undefined;
    });
    try {
      const bad = await cli(['status', '--cluster', 'prod']);
      expect(bad.code).toBe(5);
      expect(bad.out).toMatch(/^cluster prod: DEGRADED — etcd leader etcd-[abc], 2\/3 voters healthy \(quorum 2, margin 0\)/);
      // The slot is judged by the one "slot is whole" rule (the reconciler's and the departure gate's too).
      expect(bad.out).toMatch(new RegExp(`problems:[^]*etcd has no failure tolerance left[^]*- ${b2.name} \\(\\w+\\) is not following the leader[^]*- ${b2.name}'s master ${b2.instanceId} is unhealthy in the target group`));
      const json = JSON.parse((await cli(['status', '--cluster', 'prod', '--json'])).out) as Record<string, unknown> & { members: Array<Record<string, unknown>> };
      expect(Object.keys(json)).toEqual(['cluster', 'at', 'healthy', 'problems', 'etcd', 'backup', 'members', 'certificates']);
      expect(json).toMatchObject({ cluster: 'prod', healthy: false, etcd: { voters: 3, healthyVoters: 2, quorum: 2, quorumMargin: 0, state: 'quorate' } });
      expect(Object.keys(json.members[0]!)).toEqual(['member', 'az', 'asg', 'instanceId', 'lifecycleState', 'volumeId', 'volumeState', 'volumeAttachedTo', 'etcd', 'raftIndex', 'raftLag', 'lb', 'held', 'awaitingDr', 'version']);
      expect(json.members.find((m) => m.member === b2.name)).toMatchObject({ etcd: 'unreachable', lb: 'unhealthy', volumeAttachedTo: b2.instanceId });
      // etcd-b is down: its certificates cannot be read; the others' can.
      const certs = json.certificates as { earliest: Record<string, unknown> | null; all: Array<Record<string, unknown>> };
      expect(certs.all.map((x) => `${String(x.member)} ${String(x.kind)}`).sort()).toEqual(cluster.members.filter((m) => m !== b2).flatMap((m) => [`${m.name} client`, `${m.name} peer`]).sort());
      expect(Object.keys(certs.earliest!)).toEqual(['member', 'kind', 'url', 'notAfter', 'daysLeft']);
      expect(certs.earliest).toEqual(certs.all[0]);
    } finally {
      const initial = cluster.members.map((m) => `${m.name}=${m.peerUrl}`).join(',');
      await hostOk(c, b2.instanceId, 'etcd-member.sh', ['start', '--name', b2.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing', '--token', cluster.token]);
    }
  });

  it('status: a member\'s server certificate renewed for 10 days → DEGRADED (exit 5); the headline and a problem line name it; --json has it first', async () => {
    const m = cluster.members[2]!;
    const renew = (days: number) => SandboxPki.current().renewHost(sandbox.host(m.instanceId).root, { hostname: m.instanceId, ip: '127.0.0.1', cert: 'server', days });
    await renew(10);
    try {
      const r = await cli(['status', '--cluster', 'prod']);
      expect(r.code).toBe(5);
      expect(r.out.split('\n')[0]).toMatch(new RegExp(`^cluster prod: DEGRADED — .*; certificates: earliest expires in 9 d \\(${m.name} client\\)$`));
      expect(r.out).toMatch(new RegExp(`\\nproblems:\\n(  - .*\\n)*  - etcd ${m.name}'s client certificate expires 20\\d\\d-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC \\(in 9 d\\)(\\n|$)`));
      const json = JSON.parse((await cli(['status', '--cluster', 'prod', '--json'])).out) as { healthy: boolean; certificates: { earliest: unknown; all: unknown[] } };
      expect(json.healthy).toBe(false);
      expect(json.certificates.earliest).toMatchObject({ member: m.name, kind: 'client', url: m.clientUrl, daysLeft: 9.9 });
      expect(json.certificates.all).toHaveLength(6);
    } finally {
      await renew(365);
    }
  });

  it('restore: refused while the cluster has quorum (exit 3); with --force it still needs consent', async () => {
    const before = (await harnessEtcd([cluster.members[0]!.clientUrl]).memberList()).clusterId;
    const refused = await cli(['restore', '--cluster', 'prod']);
    expect(refused.code).toBe(3);
    expect(refused.err).toMatch(/refused: cluster prod still has quorum.*\nNothing was changed/s);

    const noTty = await cli(['restore', '--cluster', 'prod', '--force']);
    expect(noTty.code).toBe(2);
    expect(noTty.err).toMatch(/pass --yes/);
    const declined = await cli(['restore', '--cluster', 'prod', '--force'], 'no');
    expect(declined.err).toMatch(/RESTORE PLAN for cluster prod[\s\S]*STILL HAS QUORUM[\s\S]*etcd-a/);
    // The steps it would take once confirmed, walked from the restore's own step list.
    expect(declined.err).toMatch(/steps, once you confirm:\n\s+stop +stop etcd on etcd-a, etcd-b, etcd-c\n\s+inspect[^\n]*\n\s+restore[^\n]*\n\s+start[^\n]*\n\s+leader[^\n]*\n\s+verify /);
    expect(declined.code).toBe(4);
    expect(declined.out).toMatch(/aborted: nothing was changed/);
    expect((await harnessEtcd([cluster.members[0]!.clientUrl]).memberList()).clusterId).toBe(before);
  });

  it('usage errors exit 2 and say what is wrong', async () => {
    expect((await cli(['restore'])).err).toMatch(/missing --cluster/);
    expect((await cli(['restore', '--cluster', 'Prod;rm'])).code).toBe(2);
    expect((await cli(['frobnicate'])).err).toMatch(/unknown command "frobnicate"/);
    expect((await cli(['backup', '--cluster', 'prod', '--bogus'])).code).toBe(2);
    // Checked before any AWS call: a bad token is a usage error, not a refusal after reading the cluster.
    const badToken = await cli(['restore', '--cluster', 'prod', '--token', 'a b']);
    expect([badToken.code, badToken.err]).toEqual([2, expect.stringMatching(/invalid --token "a b"/)]);
    expect((await cli(['status', '--cluster', 'prod', '--prefix', '/etcd-backups/'])).err).toMatch(/invalid --prefix "\/etcd-backups\/": a key prefix/);
    expect((await cli(['backup', '--cluster', 'prod', '--work-dir', '/var/../etc'])).code).toBe(2);
  });

  it('plan: nothing to do on a healthy cluster; a launch event that never came → the re-drive it would do, read-only', async () => {
    const calm = await cli(['plan', '--cluster', 'prod']);
    expect(calm.code).toBe(0);
    expect(calm.out).toMatch(/^plan for prod: nothing to do \(read-only; nothing was changed\)$/m);

    const victim = memberOf(cluster, 'etcd-c');
    const { instanceId } = await killMaster(sandbox, c, victim); // its launch event is never delivered
    const waiting = await cli(['plan', '--cluster', 'prod']);
    expect(waiting.out).toMatch(new RegExp(`note: etcd-c: ${instanceId} in Pending:Wait for \\d+ s \\(grace 300 s\\)`));
    const due = await cli(['plan', '--cluster', 'prod', '--pending-grace-sec', '0', '--json']);
    const plan = JSON.parse(due.out) as { drift: number; actions: Array<{ kind: string; member?: string; instanceId?: string }> };
    expect(plan.actions).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'redrive-replacement', member: 'etcd-c', instanceId })]));
    expect(plan.drift).toBeGreaterThanOrEqual(1);
    // Read-only: the instance is still waiting for its hook.
    expect(sandbox.lifecycle.results(instanceId)).toEqual([]);
    expect((await cli(['plan', '--cluster', 'prod', '--pending-grace-sec', 'soon'])).code).toBe(2);
  });

  it('reconcile: needs the state table; --dry-run only plans; a real run brings in the master whose launch event was lost', async () => {
    // Continues the scenario above: etcd-c's replacement still waits in Pending:Wait.
    const w = writer.start('cli-reconcile');
    const waiting = (await c.asg.send(new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [memberOf(cluster, 'etcd-c').asg] })))
      .AutoScalingGroups![0]!.Instances!.find((i) => i.LifecycleState === 'Pending:Wait')!.InstanceId!;
    const noTable = await cli(['reconcile', '--cluster', 'prod']);
    expect(noTable.code).toBe(2);
    expect(noTable.err).toMatch(/missing --state-table \(or QK_STATE_TABLE\): the reconciler takes the same locks as the deployed functions/);
    // An alert topic without a state table is the same usage error (alerts are de-duplicated in the table).
    const topicOnly = await cli(['reconcile', '--cluster', 'prod', '--alert-topic-arn', ctl.topicArn]);
    expect({ code: topicOnly.code, err: topicOnly.err }).toEqual({ code: 2, err: expect.stringMatching(/missing --state-table/) as unknown });

    const dry = await cli(['reconcile', '--cluster', 'prod', '--dry-run', '--state-table', ctl.table, '--pending-grace-sec', '0']);
    expect(dry.code).toBe(0);
    expect(dry.out).toMatch(new RegExp(`^plan for prod: 1 action\\(s\\), drift 1 \\(read-only; nothing was changed\\)\n  1\\. re-drive the replacement of etcd-c on ${waiting} `));
    expect(sandbox.lifecycle.results(waiting)).toEqual([]);

    const human = await cli(['reconcile', '--cluster', 'prod', '--state-table', ctl.table, '--pending-grace-sec', '0']);
    expect(human.code).toBe(0);
    expect(human.out).toMatch(new RegExp(`^reconciled prod: drift 1, 1 of 1 step\\(s\\) done or not needed\n  ✓ re-drive the replacement of etcd-c on ${waiting} .*\n      → etcd-c on ${waiting} brought in \\(update\\), hook completed\n`)); // (notes may follow)
    expect(human.err).toMatch(/✓ membership: member update/); // progress on stderr
    expect(sandbox.lifecycle.results(waiting)).toEqual(['CONTINUE']);

    const again = await cli(['reconcile', '--cluster', 'prod', '--state-table', ctl.table, '--json']);
    expect(JSON.parse(again.out)).toEqual({ cluster: 'prod', drift: 0, failed: 0, steps: [], notes: [] });
    await writer.check(w, 'quorum-keeper reconcile re-drives a lost launch event');
  });
});
