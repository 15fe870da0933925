/**
 * The observation's ports (ports.ts) over the AWS adapters in lib/aws (which alone build SDK
 * commands) and the SSM host scripts, one builder per source: a function whose flows read only
 * some sources builds only those ports, and its bundle carries only those clients (the probe has
 * no EC2, S3 or load balancer code). The observation sits above lib/aws: nothing there imports it.
 */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { HostScriptBundle } from '../host/command';
import type { Hosts } from '../host/commands';
import type { BackupsPort, EtcdReadPort, FleetPort, HostsReadPort, InstancesPort, ObservePorts, RecordsPort, TargetsPort, VolumesPort } from './ports';
import { listBackups } from '../aws/backups';
import { clusterVolumes } from '../aws/ec2';
import { etcdViewOf, peerUrlOf, surveyCluster, viewCluster } from '../aws/etcd-survey';
import { instanceStates, readMasterGroups, type Tags } from '../aws/fleet';
import { targetHealth } from '../aws/lb';
import type { RunOptions } from '../aws/run-command';

/** Each builder takes its client as a thunk: the client is built when the port is first read. */
export const fleetPort = (asg: () => AutoScalingClient, tags: Tags): FleetPort => ({ masterGroups: (cluster) => readMasterGroups(asg(), tags, cluster) });

export const instancesPort = (ec2: () => EC2Client): InstancesPort => ({ states: (ids) => instanceStates(ec2(), ids) });

export const volumesPort = (ec2: () => EC2Client, tags: Tags): VolumesPort => ({
  ofCluster: (cluster) => clusterVolumes(ec2(), { tagCluster: tags.cluster, tagMember: tags.member, cluster }),
});

export const targetsPort = (elb: () => ElasticLoadBalancingV2Client, tags: Tags): TargetsPort => ({
  health: async (cluster) => {
    const m = await targetHealth(elb(), tags.cluster, cluster);
    return m ? Object.fromEntries(m) : null;
  },
});

/** etcd through the SSM host scripts; `runOpts` for the survey and the peer-URL reads (the caller's signal added per call). */
export function etcdPort(ssm: () => SSMClient, scripts: HostScriptBundle, runOpts: RunOptions): EtcdReadPort {
  const opts = (ctx: { signal?: AbortSignal }): RunOptions => (ctx.signal ? { ...runOpts, abortSignal: ctx.signal } : runOpts);
  return {
    survey: async (candidates, read, ctx) => {
      const { survey, answered, tried } = await surveyCluster(ssm(), scripts, candidates, opts(ctx), read.leases ?? [], read.certs ? { certs: true } : {});
      return etcdViewOf(survey, answered, tried);
    },
    peerUrlOf: (instanceId, ctx) => peerUrlOf(ssm(), scripts, instanceId, opts(ctx)),
    membership: (instanceId, ctx) => viewCluster(ssm(), scripts, instanceId, opts(ctx), ctx.skipStale),
  };
}

/**
 * The masters' own word over the host port: `member-status`, and `restore-inspect` for the DB's
 * revision where etcd is down (it holds the DB's lock while it runs). Masters whose SSM agent is
 * not online are not asked (null).
 */
export function hostsReadPort(hosts: Hosts, runOpts: RunOptions): HostsReadPort {
  return {
    async report(instanceId, read, ctx) {
      if (!(await hosts.online(instanceId))) return null;
      const opts: RunOptions = { ...runOpts, maxWaitSec: read.maxWaitSec, executionTimeoutSec: read.maxWaitSec, ...(ctx.signal ? { abortSignal: ctx.signal } : {}) };
      const st = await hosts.run(instanceId, { kind: 'member-status' }, opts);
      const revision = read.offlineRevision && !st.running && st.hasData ? (await hosts.run(instanceId, { kind: 'restore-inspect' }, opts)).revision : null;
      return { running: st.running, stopped: st.stopped, hasData: st.hasData, peerUrl: st.peerUrl, clientUrl: st.clientUrl, revision };
    },
  };
}

/** `s3`: the client, built when first used. */
export const backupsPort = (s3: () => S3Client): BackupsPort => ({ list: (store, cluster) => listBackups(s3(), store, cluster) });

export interface ObserveClients {
  asg: () => AutoScalingClient;
  ec2: () => EC2Client;
  elb: () => ElasticLoadBalancingV2Client;
  ssm: () => SSMClient;
  s3: () => S3Client;
  scripts: HostScriptBundle;
  tags: Tags;
  runOpts: RunOptions;
  /** The host port the masters' word is read through. */
  hosts: Hosts;
  /** The state table's records (absent: none). */
  records?: RecordsPort | undefined;
}

/** Every port: for the flows that may read every source (status, the reconciler, the lifecycle flows). */
export function awsObservePorts(c: ObserveClients): ObservePorts {
  return {
    fleet: fleetPort(c.asg, c.tags), instances: instancesPort(c.ec2), volumes: volumesPort(c.ec2, c.tags), targets: targetsPort(c.elb, c.tags),
    etcd: etcdPort(c.ssm, c.scripts, c.runOpts), backups: backupsPort(c.s3), hosts: hostsReadPort(c.hosts, c.runOpts),
    ...(c.records ? { records: c.records } : {}),
  };
}
