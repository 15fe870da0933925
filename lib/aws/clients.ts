/**
 * AWS SDK v3 clients from one validated source (the only place endpoints and S3 path style are
 * set). Each client is built on first use: a Lambda pays only for the clients its flow touches
 * (the EC2 client alone costs ~0.6 s of cold start).
 */
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ElasticLoadBalancingV2Client } from '@aws-sdk/client-elastic-load-balancing-v2';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { S3Client } from '@aws-sdk/client-s3';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';

export interface ClientSource {
  region: string;
  /** One endpoint for every service (the sandbox); S3 then uses path-style addressing. */
  endpoint?: string | undefined;
  /** Explicit keys; absent = the SDK's default credential chain. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | undefined;
}

export interface AwsClients {
  readonly ec2: EC2Client;
  readonly asg: AutoScalingClient;
  readonly ssm: SSMClient;
  readonly elb: ElasticLoadBalancingV2Client;
  readonly ddb: DynamoDBClient;
  readonly sns: SNSClient;
  readonly s3: S3Client;
}

type Destroyable = { destroy(): void };

export function clientConfig(src: ClientSource) {
  return {
    region: src.region, maxAttempts: 5,
    ...(src.endpoint ? { endpoint: src.endpoint } : {}), ...(src.credentials ? { credentials: src.credentials } : {}),
  };
}

/**
 * Lambda itself, for a scheduled function that hands each cluster to its own invocation
 * (functions/fan-out.ts): not one of the flows' clients, no flow invokes a function.
 */
export function lambdaClient(src: ClientSource): LambdaClient {
  return new LambdaClient(clientConfig(src));
}

/**
 * An object whose properties are clients built on first use by `make`; `destroy` ends the ones
 * that were built (a command or a Lambda builds only the clients its flow touches).
 */
export function lazyClients<T extends object>(make: { [K in keyof T]: () => T[K] & Destroyable }): T & { destroy(): void } {
  const built = new Map<keyof T, Destroyable>();
  const out = { destroy: () => built.forEach((c) => c.destroy()) } as T & { destroy(): void };
  for (const name of Object.keys(make) as Array<keyof T>) {
    Object.defineProperty(out, name, {
      enumerable: true,
      get: () => {
        if (!built.has(name)) built.set(name, make[name]());
        return built.get(name);
      },
    });
  }
  return out;
}

/** Clients built on first use from `src`; `destroy` ends the ones that were built. */
export function awsClients(src: ClientSource): AwsClients & { destroy(): void } {
  const cfg = clientConfig(src);
  return lazyClients<AwsClients>({
    ec2: () => new EC2Client(cfg), asg: () => new AutoScalingClient(cfg), ssm: () => new SSMClient(cfg),
    elb: () => new ElasticLoadBalancingV2Client(cfg), ddb: () => new DynamoDBClient(cfg), sns: () => new SNSClient(cfg),
    s3: () => new S3Client({ ...cfg, forcePathStyle: Boolean(src.endpoint) }),
  });
}
