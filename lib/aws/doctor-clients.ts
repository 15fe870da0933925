/**
 * The clients only `quorum-keeper doctor` uses, beside the flows' own (lib/aws/clients.ts): KMS
 * (the backup key), CloudFormation, EventBridge and Lambda (the deployed stack's functions and
 * rules). Built on first use from the same validated source; `destroy` ends the ones built.
 */
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { KMSClient } from '@aws-sdk/client-kms';
import { LambdaClient } from '@aws-sdk/client-lambda';
import { type ClientSource, clientConfig, lazyClients } from './clients';

export interface DoctorClients {
  readonly kms: KMSClient;
  readonly cfn: CloudFormationClient;
  readonly events: EventBridgeClient;
  readonly lambda: LambdaClient;
}

export function doctorClients(src: ClientSource): DoctorClients & { destroy(): void } {
  const cfg = clientConfig(src);
  return lazyClients<DoctorClients>({
    kms: () => new KMSClient(cfg), cfn: () => new CloudFormationClient(cfg), events: () => new EventBridgeClient(cfg), lambda: () => new LambdaClient(cfg),
  });
}
