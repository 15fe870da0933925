/**
 * Master replacement end to end (issue 8): the product flow (replaceMaster, from the launch
 * event to CONTINUE) against the raw operations a replacement cannot avoid, done by hand in
 * the same sandbox with the same poll floor: attach the volume (SDK waiter), mount it and read
 * the host's peer URL (one SSM command each, the project's host scripts), `member update`,
 * start etcd (SSM), wait until the member is caught up, register the target (SDK waiter),
 * complete the lifecycle action. No checks, no lock, no alerts, no heartbeats. The raw path
 * runs etcdctl locally; the flow must go through SSM on a peer master (Lambda cannot reach
 * etcd), which is most of the difference. Alternating rounds, each on a freshly killed
 * follower; medians compared.
 */
import { CompleteLifecycleActionCommand } from '@aws-sdk/client-auto-scaling';
import { AttachVolumeCommand, waitUntilVolumeInUse } from '@aws-sdk/client-ec2';
import { RegisterTargetsCommand, waitUntilTargetInService } from '@aws-sdk/client-elastic-load-balancing-v2';
import { EtcdClient, localEtcdRunner } from '../lib/etcd';
import { ssmEtcdRunner } from '../lib/aws/run-command';
import { findMasterSlot } from '../lib/flows/master-slot';
import { replaceMaster } from '../lib/flows/replacement';
import { hostOk, hostScripts, provisionCluster, SANDBOX_RUN, type SandboxClients, type SandboxCluster, type SandboxMember, TAG_CLUSTER, TAG_MEMBER } from '../sandbox/cluster';
import { destroyControl, provisionControl, SANDBOX_TIMINGS, sandboxFlowDeps } from '../sandbox/control';
import { waitFor } from '../sandbox/ports';
import { killMaster, putKeys } from '../sandbox/scenario';
import type { Sandbox } from '../sandbox/sandbox';
import { harnessEtcd } from '../sandbox/etcd-http';
import { SandboxPki } from '../sandbox/pki';

export interface ReplaceResult {
  rounds: number;
  flowMs: number[];
  rawMs: number[];
  flowMedianMs: number;
  rawMedianMs: number;
  ratio: number;
  target: number;
  /** The same raw operations with etcdctl run on a surviving master over SSM, as Lambda must. */
  rawSsmMs: number[];
  rawSsmMedianMs: number;
  ratioSsm: number;
  /** Median time per flow step (counted rounds), where a replacement spends its time. */
  flowStepMedianMs: Record<string, number>;
  /** SSM commands one replacement sends, and how many run one after another (overlapping ones count once). */
  ssmCommands: number;
  ssmSequential: number;
}

/** Invocations sent since `before`, and the number of sequential stages they form (overlaps merged). */
export function ssmStages(sandbox: Sandbox, before: Set<string>): { commands: number; sequential: number } {
  const spans = [...sandbox.invocations.entries()].filter(([k]) => !before.has(k))
    .map(([, i]) => [i.requestedAt.getTime(), (i.endedAt ?? new Date()).getTime()] as const).sort((a, b) => a[0] - b[0]);
  let sequential = 0;
  let end = -Infinity;
  for (const [s, e] of spans) {
    if (s >= end) sequential += 1;
    end = Math.max(end, e);
  }
  return { commands: spans.length, sequential };
}

/**
 * Always a follower: killing the leader adds an election (1–5 s here) to whichever side draws
 * it, which would measure luck, not the flow.
 */
export async function followerOf(cluster: SandboxCluster): Promise<SandboxMember> {
  const st = await harnessEtcd(cluster.members.map((m) => m.clientUrl)).endpointStatus({ cluster: false });
  const leader = st.statuses.find((x) => x.isLeader)?.endpoint;
  return cluster.members.find((m) => m.clientUrl !== leader)!;
}

/** A progress sink that sums each step's time (ms) into `steps`. */
export function stepTimes(): { steps: Record<string, number>; progress: (e: { step: string; status: string; ms?: number }) => void } {
  const steps: Record<string, number> = {};
  return { steps, progress: (e) => {
    if (e.ms !== undefined && e.status !== 'start') steps[e.step] = (steps[e.step] ?? 0) + e.ms;
  } };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchReplacement(sandbox: Sandbox, c: SandboxClients, rounds: number, log: (s: string) => void): Promise<ReplaceResult> {
  await sandbox.reset();
  const ctl = await provisionControl(sandbox);
  try {
    const cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeys(cluster.members[0]!.clientUrl, '/registry/bench/', 1000);
    const endpoints = () => cluster.members.map((m) => m.clientUrl);
    const waiter = <C>(client: C) => ({ client, maxWaitTime: 60, minDelay: SANDBOX_TIMINGS.minDelaySec, maxDelay: SANDBOX_TIMINGS.maxDelaySec });
    const victim = () => followerOf(cluster);

    const flowOnce = async (i: number) => {
      const m = await victim();
      const { instanceId, event } = await killMaster(sandbox, c, m);
      const found = await findMasterSlot(c.asg, m.asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
      if (found.kind !== 'master') throw new Error(found.reason);
      const { steps, progress } = stepTimes();
      const sent = new Set(sandbox.invocations.keys());
      const t0 = Date.now();
      const out = await replaceMaster(sandboxFlowDeps(c, ctl, progress), { slot: found.slot, instanceId, hook: { asg: m.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId } });
      const ms = Date.now() - t0;
      if (out.result !== 'continued') throw new Error(`replacement ${out.result}: ${out.reason}`);
      Object.assign(m, { instanceId, peerUrl: sandbox.host(instanceId).peerUrl, clientUrl: sandbox.host(instanceId).clientUrl });
      log(`replacement flow #${i} (${m.name}): ${(ms / 1000).toFixed(2)} s (${Object.entries(steps).map(([k, v]) => `${k} ${v} ms`).join(', ')})`);
      stepLog.push(steps);
      ssmLog.push(ssmStages(sandbox, sent));
      return ms;
    };

    // via 'local': etcdctl runs here (what a replacement would cost if Lambda could reach etcd);
    // via 'ssm': the same etcdctl commands run on a surviving master over SSM, as they must
    // from Lambda, one command each (no checks, no folding).
    const rawOnce = async (i: number, via: 'local' | 'ssm') => {
      const m = await victim();
      const peer = cluster.members.find((x) => x !== m)!;
      const { instanceId, event } = await killMaster(sandbox, c, m);
      const runner = via === 'local' ? localEtcdRunner() : ssmEtcdRunner(c.ssm, hostScripts(), peer.instanceId, SANDBOX_RUN);
      // Run here, etcdctl presents the harness's client certificate; over SSM the host adds its own.
      const tls = via === 'local' ? { tls: SandboxPki.current().harness } : {};
      const etcd = new EtcdClient(runner, { endpoints: via === 'local' ? endpoints().filter((u) => u !== m.clientUrl) : [peer.clientUrl], ...tls });
      const t0 = Date.now();
      await c.ec2.send(new AttachVolumeCommand({ VolumeId: m.volumeId, InstanceId: instanceId, Device: '/dev/xvdf' }));
      await waitUntilVolumeInUse(waiter(c.ec2), { VolumeIds: [m.volumeId] });
      await hostOk(c, instanceId, 'etcd-mount.sh', ['--volume-id', m.volumeId, '--cluster', cluster.name, '--member', m.name]);
      const urls = JSON.parse(await hostOk(c, instanceId, 'etcd-member.sh', ['urls'])) as { peerUrl: string; clientUrl: string };
      const list = await etcd.memberList();
      const me = list.members.find((x) => x.name === m.name)!;
      // After a leader dies the survivors elect one and refuse reconfiguration for a few
      // seconds: unavoidable for any replacement, so the raw path waits for it too.
      await waitFor('etcd to accept member update', async () => etcd.memberUpdate(me.id, [urls.peerUrl]).then(() => true, () => undefined), { timeoutMs: 60_000, intervalMs: 250 });
      const initial = list.members.map((x) => `${x.name}=${x.id === me.id ? urls.peerUrl : x.peerUrls[0]}`).join(',');
      await hostOk(c, instanceId, 'etcd-member.sh', ['start', '--name', m.name, '--initial-cluster', initial, '--initial-cluster-state', 'existing']);
      await waitFor('the member to catch up', async () => {
        const st = await new EtcdClient(runner, { endpoints: [...endpoints().filter((u) => u !== m.clientUrl), urls.clientUrl], ...tls }).endpointStatus({ cluster: false });
        const leader = st.statuses.find((s) => s.isLeader);
        const mine = st.statuses.find((s) => s.endpoint === urls.clientUrl);
        return leader && mine && mine.leader === leader.memberId && leader.raftIndex - mine.raftIndex <= 100 ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 250 });
      await c.elb.send(new RegisterTargetsCommand({ TargetGroupArn: cluster.targetGroupArn, Targets: [{ Id: instanceId, Port: 6443 }] }));
      await waitUntilTargetInService(waiter(c.elb), { TargetGroupArn: cluster.targetGroupArn, Targets: [{ Id: instanceId, Port: 6443 }] });
      await c.asg.send(new CompleteLifecycleActionCommand({
        AutoScalingGroupName: m.asg, LifecycleHookName: event.detail.LifecycleHookName, LifecycleActionToken: event.detail.LifecycleActionToken, InstanceId: instanceId, LifecycleActionResult: 'CONTINUE',
      }));
      const ms = Date.now() - t0;
      Object.assign(m, { instanceId, peerUrl: urls.peerUrl, clientUrl: urls.clientUrl });
      log(`raw operations${via === 'ssm' ? ' over SSM' : ''} #${i} (${m.name}): ${(ms / 1000).toFixed(2)} s`);
      return ms;
    };

    const flow: number[] = [];
    const raw: number[] = [];
    const rawSsm: number[] = [];
    const stepLog: Array<Record<string, number>> = [];
    const ssmLog: Array<{ commands: number; sequential: number }> = [];
    await flowOnce(0); // warm-up, not counted
    for (let i = 1; i <= rounds; i++) {
      // Rotate the order so no side always runs first.
      const order = [
        async () => flow.push(await flowOnce(i)), async () => raw.push(await rawOnce(i, 'local')), async () => rawSsm.push(await rawOnce(i, 'ssm')),
      ];
      for (let k = 0; k < order.length; k++) await order[(i + k) % order.length]!();
    }
    const ratio = median(flow) / median(raw);
    const ratioSsm = median(flow) / median(rawSsm);
    const counted = stepLog.slice(1);
    const names = [...new Set(counted.flatMap((s) => Object.keys(s)))];
    const flowStepMedianMs = Object.fromEntries(names.map((n) => [n, median(counted.map((s) => s[n] ?? 0))]));
    return {
      rounds, flowMs: flow, rawMs: raw, flowMedianMs: median(flow), rawMedianMs: median(raw), ratio: Number(ratio.toFixed(3)), target: 1.5, flowStepMedianMs,
      rawSsmMs: rawSsm, rawSsmMedianMs: median(rawSsm), ratioSsm: Number(ratioSsm.toFixed(3)),
      ssmCommands: median(ssmLog.slice(1).map((x) => x.commands)), ssmSequential: median(ssmLog.slice(1).map((x) => x.sequential)),
    };
  } finally {
    destroyControl(ctl);
  }
}

export function replaceTable(r: ReplaceResult): string {
  return [
    '| benchmark | product flow (median) | raw operations (median) | ratio | goal |',
    '|---|---|---|---|---|',
    `| master replacement, launch event → CONTINUE | ${(r.flowMedianMs / 1000).toFixed(2)} s | ${(r.rawMedianMs / 1000).toFixed(2)} s (attach, mount, member update, start, catch up, register, complete; etcdctl run locally) | ${r.ratio.toFixed(2)}× | ≤ ${r.target}× |`,
    `| the same, raw etcdctl over SSM on a peer (as Lambda must) | ${(r.flowMedianMs / 1000).toFixed(2)} s | ${(r.rawSsmMedianMs / 1000).toFixed(2)} s | ${r.ratioSsm.toFixed(2)}× | ≤ ${r.target}× |`,
    '',
    `SSM commands per replacement: ${r.ssmCommands}, of which ${r.ssmSequential} one after another (raw: 3 with etcdctl run locally, 6 or more over SSM). Median per step (ms): ${Object.entries(r.flowStepMedianMs).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
  ].join('\n');
}
