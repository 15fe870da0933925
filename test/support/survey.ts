/**
 * The SSM survey (lib/aws/etcd-survey.ts) plus a Peer — an etcd client on the master that
 * answered — for tests that go on to run etcd commands there. The product reads the survey only
 * through the observation (lib/observe).
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { type EtcdSurvey, surveyCluster as surveyOverSsm } from '../../lib/aws/etcd-survey';
import { type RunOptions, ssmEtcdRunner } from '../../lib/aws/run-command';
import { EtcdClient } from '../../lib/etcd';
import type { HostScriptBundle } from '../../lib/host/command';
import type { Peer } from '../../lib/flows/cluster-masters';

export { parseSurvey, viewCluster, type EtcdSurvey, type LeaseAnswer, type MembershipView } from '../../lib/aws/etcd-survey';

/** `surveyCluster` of lib/aws/etcd-survey.ts, with a Peer on the master whose etcd answered (null when none did). */
export async function surveyCluster(
  ssm: SSMClient, scripts: HostScriptBundle, candidates: ReadonlyArray<{ instanceId: string; member: string }>, opts: RunOptions,
  leases: readonly string[] = [], read: { certs?: boolean } = {},
): Promise<{ peer: Peer | null; survey: EtcdSurvey | null; tried: string[] }> {
  const { survey, answered, tried } = await surveyOverSsm(ssm, scripts, candidates, opts, leases, read);
  if (!survey || !answered) return { peer: null, survey, tried };
  const etcd = new EtcdClient(ssmEtcdRunner(ssm, scripts, survey.instanceId, opts), { endpoints: [survey.local.clientUrl] });
  return { peer: { instanceId: survey.instanceId, member: survey.member, etcd, clusterVersion: survey.local.clusterVersion }, survey, tried };
}
