/** AWS SDK v3 clients built from validated configuration (the only place endpoints are set). */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import type { Config } from '../config';

export function clientOptions(cfg: Pick<Config, 'AWS_REGION' | 'QK_AWS_ENDPOINT'>) {
  return {
    region: cfg.AWS_REGION,
    ...(cfg.QK_AWS_ENDPOINT ? { endpoint: cfg.QK_AWS_ENDPOINT } : {}),
    maxAttempts: 5,
  };
}

export interface AwsClients {
  ec2: EC2Client;
  asg: AutoScalingClient;
  ssm: SSMClient;
  elb: ElasticLoadBalancingV2Client;
  ddb: DynamoDBClient;
  sns: SNSClient;
}

export function awsClients(cfg: Config): AwsClients {
  const o = clientOptions(cfg);
  return {
    ec2: new EC2Client(o), asg: new AutoScalingClient(o), ssm: new SSMClient(o),
    elb: new ElasticLoadBalancingV2Client(o), ddb: new DynamoDBClient(o), sns: new SNSClient(o),
  };
}
