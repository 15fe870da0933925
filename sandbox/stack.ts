/**
 * Deploys an `osls package` output into moto's CloudFormation the way `serverless deploy` does
 * on AWS: create the stack from the create template (the deployment bucket only), upload the
 * function zips under the S3 keys the update template names, then update the stack to the full
 * template and wait for it. Used by the template smoke test (issue 19): what moto can create is
 * created, and the outputs the operator CLI reads exist.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import {
  CloudFormationClient, CreateStackCommand, DescribeStacksCommand, UpdateStackCommand, paginateListStackResources,
  waitUntilStackCreateComplete, waitUntilStackUpdateComplete, type StackResourceSummary,
} from '@aws-sdk/client-cloudformation';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';

export interface AwsTarget {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

export interface DeployedStack {
  outputs: Record<string, string>;
  resources: StackResourceSummary[];
}

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }> };
const CAPABILITIES = ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] as const;

/** The S3 prefix the update template's functions load their code from (one per deployment). */
function artifactPrefix(template: Template): string {
  const keys = new Set(Object.values(template.Resources)
    .filter((r) => r.Type === 'AWS::Lambda::Function')
    .map((r) => posix.dirname(String((r.Properties?.Code as { S3Key?: unknown } | undefined)?.S3Key))));
  if (keys.size !== 1) throw new Error(`expected one artefact prefix in the template, found ${[...keys].join(', ') || 'none'}`);
  return [...keys][0]!;
}

export async function deployPackage(target: AwsTarget, packageDir: string, stackName: string): Promise<DeployedStack> {
  const cfn = new CloudFormationClient({ ...target, maxAttempts: 1 });
  const s3 = new S3Client({ ...target, forcePathStyle: true, maxAttempts: 1 });
  const waiter = { client: cfn, maxWaitTime: 120, minDelay: 1, maxDelay: 2 };
  try {
    await cfn.send(new CreateStackCommand({
      StackName: stackName, Capabilities: [...CAPABILITIES],
      TemplateBody: readFileSync(join(packageDir, 'cloudformation-template-create-stack.json'), 'utf8'),
    }));
    await waitUntilStackCreateComplete(waiter, { StackName: stackName });
    const bucket = (await describe(cfn, stackName)).ServerlessDeploymentBucketName;
    if (!bucket) throw new Error('the create template gave no ServerlessDeploymentBucketName output');
    const body = readFileSync(join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8');
    const prefix = artifactPrefix(JSON.parse(body) as Template);
    for (const zip of readdirSync(packageDir).filter((f) => f.endsWith('.zip'))) {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${zip}`, Body: readFileSync(join(packageDir, zip)) }));
    }
    await cfn.send(new UpdateStackCommand({ StackName: stackName, Capabilities: [...CAPABILITIES], TemplateBody: body }));
    await waitUntilStackUpdateComplete(waiter, { StackName: stackName });
    const resources: StackResourceSummary[] = [];
    for await (const page of paginateListStackResources({ client: cfn }, { StackName: stackName })) resources.push(...(page.StackResourceSummaries ?? []));
    return { outputs: await describe(cfn, stackName), resources };
  } finally {
    cfn.destroy();
    s3.destroy();
  }
}

async function describe(cfn: CloudFormationClient, stackName: string): Promise<Record<string, string>> {
  const stack = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
  return Object.fromEntries((stack?.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));
}
