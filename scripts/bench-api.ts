/**
 * API calls per flow (issue 8), counted by SDK middleware (sandbox/api-calls.ts), and how they
 * grow with the number of clusters in the account: the measured cluster `prod` is real (3 etcd
 * members); the other clusters exist only in moto (three tagged ASGs, three tagged volumes and
 * a tagged target group each), as other clusters would in a shared account. Their ASGs are
 * empty: the sandbox would boot a host for every running instance, and no product call lists
 * instances by anything but ID.
 */
import { CreateAutoScalingGroupCommand } from '@aws-sdk/client-auto-scaling';
import { CreateVolumeCommand, DescribeVpcsCommand } from '@aws-sdk/client-ec2';
import { CreateTargetGroupCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { DEFAULT_RECONCILE } from '../lib/domain/reconcile';
import { backupCluster } from '../lib/flows/backup';
import { listClusters } from '../lib/flows/cluster-masters';
import { findMasterSlot } from '../lib/flows/master-slot';
import { probeCluster } from '../lib/flows/probe';
import { reconcileCluster } from '../lib/flows/reconcile';
import { replaceMaster } from '../lib/flows/replacement';
import { clusterStatus } from '../lib/flows/status';
import { ApiCallCounter } from '../sandbox/api-calls';
import { provisionCluster, type SandboxClients, TAG_CLUSTER, TAG_MEMBER } from '../sandbox/cluster';
import {
  destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxBackupDeps, sandboxBackupSettings, sandboxFlowDeps, sandboxProbeDeps,
  sandboxReconcileDeps, sandboxStatusDeps,
} from '../sandbox/control';
import { killMaster, memberOf } from '../sandbox/scenario';
import type { Sandbox } from '../sandbox/sandbox';

export interface ApiCallsResult {
  /** flow → clusters in the account → calls for one run on `prod`. */
  calls: Record<string, Record<number, number>>;
  /** The operations behind each flow's count, for the largest account. */
  detail: Record<string, Array<[string, number]>>;
}

const FLOWS = ['listClusters (once per scheduled run)', 'status', 'probe', 'backup', 'reconcile (in shape)', 'replacement'] as const;

async function addDecoys(c: SandboxClients, n: number): Promise<void> {
  const tags = (cluster: string, member?: string) => [{ Key: TAG_CLUSTER, Value: cluster }, ...(member ? [{ Key: TAG_MEMBER, Value: member }] : [])];
  const vpcId = (await c.ec2.send(new DescribeVpcsCommand({}))).Vpcs?.[0]?.VpcId;
  for (let i = 1; i <= n; i++) {
    const cluster = `decoy-${i}`;
    await c.elb.send(new CreateTargetGroupCommand({ Name: `${cluster}-apiserver`, Protocol: 'TCP', Port: 6443, VpcId: vpcId, TargetType: 'instance', Tags: tags(cluster) }));
    await Promise.all(['a', 'b', 'c'].map(async (x, k) => {
      const member = `etcd-${x}`;
      const az = `us-east-1${'abc'[k]}`;
      await c.ec2.send(new CreateVolumeCommand({ AvailabilityZone: az, Size: 20, TagSpecifications: [{ ResourceType: 'volume', Tags: tags(cluster, member) }] }));
      await c.asg.send(new CreateAutoScalingGroupCommand({
        AutoScalingGroupName: `${cluster}-master-${az}`, MinSize: 0, MaxSize: 1, DesiredCapacity: 0, LaunchTemplate: { LaunchTemplateName: 'prod-master' }, AvailabilityZones: [az],
        Tags: tags(cluster, member).map((t) => ({ ...t, PropagateAtLaunch: true, ResourceId: `${cluster}-master-${az}`, ResourceType: 'auto-scaling-group' })),
      }));
    }));
  }
}

export async function benchApiCalls(sandbox: Sandbox, c: SandboxClients, sizes: readonly number[], log: (s: string) => void): Promise<ApiCallsResult> {
  const result: ApiCallsResult = { calls: Object.fromEntries(FLOWS.map((f) => [f, {}])), detail: {} };
  for (const n of sizes) {
    await sandbox.reset();
    const ctl = await provisionControl(sandbox);
    const b = await provisionBackups(sandbox);
    try {
      const cluster = await provisionCluster(sandbox, c, { name: 'prod' });
      await addDecoys(c, n - 1);
      const counter = new ApiCallCounter().attach(c.ec2, c.asg, c.ssm, c.elb, ctl.ddb, ctl.sns, b.s3);
      const measure = async (flow: (typeof FLOWS)[number], fn: () => Promise<unknown>) => {
        counter.reset();
        await fn();
        result.calls[flow]![n] = counter.total();
        if (n === Math.max(...sizes)) result.detail[flow] = counter.byOperation();
      };
      await measure('listClusters (once per scheduled run)', async () => {
        const found = await listClusters(c.asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
        if (found.length !== n) throw new Error(`expected ${n} clusters, found ${found.length}`);
      });
      await measure('status', () => clusterStatus(sandboxStatusDeps(c, ctl, b), 'prod', { store: b.store }));
      await measure('probe', () => probeCluster(sandboxProbeDeps(c, ctl), 'prod', { components: ['kube-controller-manager', 'kube-scheduler'], quotaBytes: 2 * 1024 ** 3 }));
      await measure('backup', async () => {
        const out = await backupCluster(sandboxBackupDeps(c, ctl, b), 'prod', sandboxBackupSettings(b));
        if (out.result !== 'uploaded') throw new Error(`backup failed: ${out.failure?.message}`);
      });
      await measure('reconcile (in shape)', async () => {
        const out = await reconcileCluster(sandboxReconcileDeps(c, ctl, b), 'prod', DEFAULT_RECONCILE);
        if (out.plan.actions.length) throw new Error(`expected a cluster in shape: ${out.summary}`);
      });
      const victim = memberOf(cluster, 'etcd-a');
      const { instanceId, event } = await killMaster(sandbox, c, victim);
      const found = await findMasterSlot(c.asg, victim.asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
      if (found.kind !== 'master') throw new Error(found.reason);
      await measure('replacement', async () => {
        const hook = { asg: victim.asg, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId };
        const out = await replaceMaster(sandboxFlowDeps(c, ctl), { slot: found.slot, instanceId, hook });
        if (out.result !== 'continued') throw new Error(`replacement ${out.result}: ${out.reason}`);
      });
      log(`api calls with ${n} cluster(s) in the account: ${FLOWS.map((f) => `${f} ${result.calls[f]![n]}`).join(', ')}`);
    } finally {
      destroyBackups(b);
      destroyControl(ctl);
    }
  }
  return result;
}

export function apiCallsTable(r: ApiCallsResult, sizes: readonly number[]): string {
  return [
    `| flow (one run on one cluster) | ${sizes.map((n) => `${n} cluster${n === 1 ? '' : 's'} in the account`).join(' | ')} | calls by operation (${Math.max(...sizes)} clusters) |`,
    `|---|${sizes.map(() => '---|').join('')}---|`,
    ...FLOWS.map((f) => `| ${f} | ${sizes.map((n) => String(r.calls[f]![n] ?? '-')).join(' | ')} | ${(r.detail[f] ?? []).map(([op, k]) => `${op} ${k}`).join(', ')} |`),
  ].join('\n');
}
