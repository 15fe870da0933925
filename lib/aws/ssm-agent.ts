/** Whether a master's SSM agent is online (no SDK waiter exists for this). */
import { DescribeInstanceInformationCommand, type SSMClient } from '@aws-sdk/client-ssm';

export async function agentOnline(ssm: SSMClient, instanceId: string): Promise<boolean> {
  const out = await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] }));
  return out.InstanceInformationList?.some((i) => i.InstanceId === instanceId && i.PingStatus === 'Online') ?? false;
}
