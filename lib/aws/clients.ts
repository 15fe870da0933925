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

/** How each client is built from the validated config (S3 path style only with an explicit endpoint). */
export type ClientMakers = { [K in keyof AwsClients]: (cfg: ReturnType<typeof clientConfig>, src: ClientSource) => AwsClients[K] & Destroyable };

/**
 * One maker per client, each its own export: a Lambda names the ones its flows use (functions/*.ts),
 * and its bundle carries only those SDK packages (the EC2 client alone is ~1 MB of a bundle).
 */
export const ec2Client: ClientMakers['ec2'] = (cfg) => new EC2Client(cfg);
export const asgClient: ClientMakers['asg'] = (cfg) => new AutoScalingClient(cfg);
export const ssmClient: ClientMakers['ssm'] = (cfg) => new SSMClient(cfg);
export const elbClient: ClientMakers['elb'] = (cfg) => new ElasticLoadBalancingV2Client(cfg);
export const ddbClient: ClientMakers['ddb'] = (cfg) => new DynamoDBClient(cfg);
export const snsClient: ClientMakers['sns'] = (cfg) => new SNSClient(cfg);
export const s3Client: ClientMakers['s3'] = (cfg, src) => new S3Client({ ...cfg, forcePathStyle: Boolean(src.endpoint) });

/** Every client: the CLI's and the sandbox's (they run every flow). */
export const ALL_CLIENTS: ClientMakers = { ec2: ec2Client, asg: asgClient, ssm: ssmClient, elb: elbClient, ddb: ddbClient, sns: snsClient, s3: s3Client };

/**
 * Clients built on first use from `src` by `makers`; `destroy` ends the ones that were built. A
 * client without a maker was left out of this function's bundle on purpose: using it is a bug in
 * that function's root, said by name (each function's handler test runs its flows through it).
 */
export function awsClients(src: ClientSource, makers: Partial<ClientMakers>): AwsClients & { destroy(): void } {
  const cfg = clientConfig(src);
  const make = {} as { [K in keyof AwsClients]: () => AwsClients[K] & Destroyable };
  for (const name of ['ec2', 'asg', 'ssm', 'elb', 'ddb', 'sns', 's3'] as const) {
    const m = makers[name] as ((c: typeof cfg, s: ClientSource) => Destroyable) | undefined;
    (make as Record<string, () => Destroyable>)[name] = () => {
      if (!m) throw new Error(`the ${name} client is not built into this function: add its maker to the function's root`);
      return m(cfg, src);
    };
  }
  return lazyClients<AwsClients>(make);
}
