/**
 * A status table of a sandbox cluster, read the way product code reads the world: etcd
 * through SSM on a master, volumes and target health through the AWS APIs.
 */
import { DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import { DescribeTargetHealthCommand } from '@aws-sdk/client-elastic-load-balancing-v2';
import { ssmEtcdRunner } from '../lib/aws/run-command';
import { EtcdClient, hasNoLeader } from '../lib/etcd';
import { hostScripts, SANDBOX_RUN, type SandboxClients, type SandboxCluster } from './cluster';

export interface StatusRow {
  member: string;
  az: string;
  instance: string;
  volume: string;
  attached: string;
  etcd: string;
  raftIndex: string;
  lb: string;
}

export async function clusterStatus(c: SandboxClients, cluster: SandboxCluster, via = cluster.members[0]!): Promise<StatusRow[]> {
  const alive = via;
  const etcd = new EtcdClient(ssmEtcdRunner(c.ssm, hostScripts(), alive.instanceId, SANDBOX_RUN), { endpoints: [alive.clientUrl] });
  const report = await etcd.endpointStatus({ cluster: true });
  const vols = await c.ec2.send(new DescribeVolumesCommand({ VolumeIds: cluster.members.map((m) => m.volumeId) }));
  const health = await c.elb.send(new DescribeTargetHealthCommand({ TargetGroupArn: cluster.targetGroupArn }));
  return cluster.members.map((m) => {
    const st = report.statuses.find((s) => s.endpoint === m.clientUrl);
    const vol = vols.Volumes?.find((v) => v.VolumeId === m.volumeId);
    const att = vol?.Attachments?.[0];
    const lb = health.TargetHealthDescriptions?.find((d) => d.Target?.Id === m.instanceId)?.TargetHealth?.State ?? 'not registered';
    const role = !st ? 'unreachable' : hasNoLeader(st) ? 'no leader' : st.isLeader ? 'leader' : st.isLearner ? 'learner' : 'follower';
    return {
      member: m.name,
      az: m.az,
      instance: m.instanceId,
      volume: m.volumeId,
      attached: att ? `${att.State ?? '?'} to ${att.InstanceId === m.instanceId ? 'it' : (att.InstanceId ?? '?')}` : 'available',
      etcd: role,
      raftIndex: st ? String(st.raftIndex) : '-',
      lb,
    };
  });
}

export function renderTable(rows: StatusRow[]): string {
  const headers: Record<keyof StatusRow, string> = { member: 'MEMBER', az: 'AZ', instance: 'INSTANCE', volume: 'VOLUME', attached: 'ATTACHED', etcd: 'ETCD', raftIndex: 'RAFT INDEX', lb: 'LB HEALTH' };
  const keys = Object.keys(headers) as (keyof StatusRow)[];
  const width = (k: keyof StatusRow) => Math.max(headers[k].length, ...rows.map((r) => r[k].length));
  const line = (cells: Record<keyof StatusRow, string>) => keys.map((k) => cells[k].padEnd(width(k))).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}
