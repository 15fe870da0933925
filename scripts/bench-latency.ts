/**
 * The replacement under AWS's typical latencies (issue 19; sandbox/latency.ts): from the launch
 * event to CONTINUE, the instance booting from the event on (as on AWS, where the hook fires at
 * Pending:Wait), its agent online 35 s later, each SSM command delivered in 1 s, the attachment
 * `attaching` 3 s, the target `initial` for registration (30 s) plus the group's first health
 * checks (10 s × 3). Measured with the Lambda's own timings (AWS_TIMINGS: polls 2–15 s) and with
 * the tuned command poll, rounds alternating, each on a freshly killed follower. The floor is
 * the sum of the waits no flow can avoid (boot, attachment, registration and checks, one
 * delivery per sequential SSM command): the ratio is the flow against it.
 */
import { AWS_TIMINGS, type FlowTimings } from '../lib/flows/deps';
import { flowDeps } from '../lib/compose';
import { findMasterSlot } from '../lib/flows/master-slot';
import { replaceMaster } from '../lib/flows/replacement';
import { provisionCluster, type SandboxClients, TAG_CLUSTER, TAG_MEMBER } from '../sandbox/cluster';
import { destroyControl, provisionControl, sandboxRoot } from '../sandbox/control';
import { AWS_LATENCY, SANDBOX_LATENCY } from '../sandbox/latency';
import { killMaster, putKeys } from '../sandbox/scenario';
import { followerOf, ssmStages, stepTimes } from './bench-replace';
import type { Sandbox } from '../sandbox/sandbox';

export interface LatencyRun { name: string; ms: number[]; medianMs: number; meanMs: number; stepMedianMs: Record<string, number>; ssmSequential: number }
export interface LatencyResult { floorMs: number; runs: LatencyRun[] }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchLatency(sandbox: Sandbox, c: SandboxClients, rounds: number, configs: Array<{ name: string; timings: Partial<FlowTimings> }>, log: (s: string) => void): Promise<LatencyResult> {
  await sandbox.reset();
  sandbox.useLatency(SANDBOX_LATENCY);
  const ctl = await provisionControl(sandbox);
  try {
    const cluster = await provisionCluster(sandbox, c, { name: 'prod' });
    await putKeys(cluster.members[0]!.clientUrl, '/registry/bench/', 1000);
    sandbox.useLatency(AWS_LATENCY);
    const runs: LatencyRun[] = configs.map((k) => ({ name: k.name, ms: [], medianMs: 0, meanMs: 0, stepMedianMs: {}, ssmSequential: 0 }));
    const steps: Array<Array<Record<string, number>>> = configs.map(() => []);
    const sequential: number[][] = configs.map(() => []);
    for (let i = 1; i <= rounds; i++) {
      for (let j = 0; j < configs.length; j++) {
        const k = (i + j) % configs.length;
        const m = await followerOf(cluster);
        const { instanceId, event } = await killMaster(sandbox, c, m);
        const found = await findMasterSlot(c.asg, m.asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
        if (found.kind !== 'master') throw new Error(found.reason);
        const { steps: stepMs, progress } = stepTimes();
        const root = sandboxRoot(c, ctl, { progress });
        const deps = flowDeps({ ...root, timings: { ...AWS_TIMINGS, ...configs[k]!.timings } });
        const sent = new Set(sandbox.invocations.keys());
        await sandbox.bootHost(instanceId); // it boots from launch on; its agent comes online 35 s later
        const t0 = Date.now();
        const out = await replaceMaster(deps, { slot: found.slot, instanceId, hook: { asg: m.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId } });
        const ms = Date.now() - t0;
        if (out.result !== 'continued') throw new Error(`replacement ${out.result}: ${out.reason}`);
        Object.assign(m, { instanceId, peerUrl: sandbox.host(instanceId).peerUrl, clientUrl: sandbox.host(instanceId).clientUrl });
        runs[k]!.ms.push(ms);
        steps[k]!.push(stepMs);
        sequential[k]!.push(ssmStages(sandbox, sent).sequential);
        log(`replacement under AWS latency, ${configs[k]!.name} #${i} (${m.name}): ${(ms / 1000).toFixed(1)} s (${Object.entries(stepMs).map(([s, v]) => `${s} ${(v / 1000).toFixed(1)} s`).join(', ')})`);
      }
    }
    for (const [k, r] of runs.entries()) {
      r.medianMs = median(r.ms);
      r.meanMs = r.ms.reduce((x, y) => x + y, 0) / r.ms.length;
      const names = [...new Set(steps[k]!.flatMap((s) => Object.keys(s)))];
      r.stepMedianMs = Object.fromEntries(names.map((n) => [n, median(steps[k]!.map((s) => s[n] ?? 0))]));
      r.ssmSequential = median(sequential[k]!);
    }
    const p = AWS_LATENCY;
    const floorMs = p.agentOnlineMs + p.registrationMs + 10 * 3 * 1000 * p.healthCheckScale + p.commandStartMs * (runs[0]?.ssmSequential ?? 0);
    return { floorMs, runs };
  } finally {
    sandbox.useLatency(SANDBOX_LATENCY);
    destroyControl(ctl);
  }
}

export function latencyTable(r: LatencyResult): string {
  const top = (x: LatencyRun) => Object.entries(x.stepMedianMs).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`).join(', ');
  return [
    '| replacement under the AWS latency profile, launch event → CONTINUE | each round | mean | floor (boot, registration + checks, SSM deliveries) | ratio (mean / floor) | where the time goes (median per step) |',
    '|---|---|---|---|---|---|',
    ...r.runs.map((x) => `| ${x.name} | ${x.ms.map((v) => `${(v / 1000).toFixed(1)} s`).join(', ')} | ${(x.meanMs / 1000).toFixed(1)} s | ${(r.floorMs / 1000).toFixed(1)} s | ${(x.meanMs / r.floorMs).toFixed(2)}× | ${top(x)} |`),
  ].join('\n');
}
