/**
 * The observation's ports (ports.ts) over the AWS adapters in lib/aws (which alone build SDK
 * commands) and the SSM host scripts. The observation sits above lib/aws: nothing there imports it.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { type Clock, wallNow } from '../clock';
import type { HostScriptBundle } from '../host/command';
import type { ObservePorts, RecordsPort } from './ports';
import { listBackups } from '../aws/backups';
import { clusterVolumes } from '../aws/ec2';
import { etcdViewOf, peerUrlOf, surveyCluster } from '../aws/etcd-survey';
import { instanceStates, readMasterGroups, type Tags } from '../aws/fleet';
import { targetHealth } from '../aws/lb';
import type { RunOptions } from '../aws/run-command';

export interface ObserveClients {
  asg: AutoScalingClient;
  ec2: EC2Client;
  elb: ElasticLoadBalancingV2Client;
  ssm: SSMClient;
  scripts: HostScriptBundle;
  tags: Tags;
  clock: Clock;
  /** SSM settings for the survey and the peer-URL reads. */
  runOpts: RunOptions;
  /** The client for the backup bucket (built when first used). */
  s3: () => S3Client;
  /** The state table's records (absent: none). */
  records?: RecordsPort | undefined;
}

export function awsObservePorts(c: ObserveClients): ObservePorts {
  const opts = (ctx: { signal?: AbortSignal }): RunOptions => (ctx.signal ? { ...c.runOpts, abortSignal: ctx.signal } : c.runOpts);
  return {
    fleet: {
      masterGroups: async (cluster) => {
        const { masters, bad } = await readMasterGroups(c.asg, c.tags, cluster);
        return { masters, bad };
      },
      instanceStates: (ids) => instanceStates(c.ec2, ids),
    },
    volumes: { ofCluster: (cluster) => clusterVolumes(c.ec2, { tagCluster: c.tags.cluster, tagMember: c.tags.member, cluster }) },
    targets: {
      health: async (cluster) => {
        const m = await targetHealth(c.elb, c.tags.cluster, cluster);
        return m ? Object.fromEntries(m) : null;
      },
    },
    etcd: {
      survey: async (candidates, read, ctx) => {
        const { survey, answered, tried } = await surveyCluster(c.ssm, c.scripts, candidates, opts(ctx), read.leases ?? [], read.certs ? { certs: true } : {});
        return etcdViewOf(survey, answered, tried);
      },
      peerUrlOf: (instanceId, ctx) => peerUrlOf(c.ssm, c.scripts, instanceId, opts(ctx)),
    },
    backups: { list: (store, cluster) => listBackups(c.s3(), store, cluster) },
    ...(c.records ? { records: c.records } : {}),
    now: () => wallNow(c.clock),
  };
}
