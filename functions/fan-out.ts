/**
 * Which clusters a scheduled function (probe, backup, reconcile) runs itself, and which it hands
 * to invocations of its own.
 *
 * A request that names its clusters (an operator's, or one handed off here) runs them in this
 * invocation. A scheduled run names none: with more than one cluster found, each goes to its own
 * asynchronous invocation of this same function (`{"clusters": [c]}`, InvocationType Event), so
 * a slow or failing cluster — a survey stuck until its SSM timeout, a re-drive of many minutes —
 * holds up no other and no cluster shares another's timeout. In one invocation, 4 at a time, the
 * run grows with the clusters: 50 took the probe ~30 s of its 50 s timeout under the AWS latency
 * profile, in a 1-minute schedule (docs/benchmarks.md). Handing off never recurses: the
 * invocations it makes name their cluster.
 * A cluster that cannot be handed off (throttled, no permission) runs here, after an error line.
 *
 * Lambda queues an asynchronous event and may deliver it more than once; every flow is
 * idempotent (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html).
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { Logger } from '@aws-lambda-powertools/logger';
import pLimit from 'p-limit';
import type { ScheduledRequest } from '../lib/events/scheduled';

/** Invoke calls in flight at once (each is one small API call answered 202 at once). */
const INVOKES = 10;

export interface RunPlan {
  /** Clusters this invocation runs. */
  here: string[];
  /** Clusters handed to their own invocation (the request Lambda accepted, 202). */
  handedOff: string[];
}

export interface FanOut {
  lambda: () => LambdaClient;
  /** This function's own name (the Lambda context's functionName). */
  functionName: string;
  logger: Logger;
  listClusters: () => Promise<string[]>;
}

export async function planRun(req: ScheduledRequest, f: FanOut): Promise<RunPlan> {
  if (req.clusters) return { here: req.clusters, handedOff: [] };
  const all = await f.listClusters();
  if (all.length <= 1) return { here: all, handedOff: [] };
  const limit = pLimit(INVOKES);
  const handedOff: string[] = [];
  const here: string[] = [];
  await Promise.all(all.map((cluster) => limit(async () => {
    const payload = { clusters: [cluster], ...(req.dryRun !== undefined ? { dryRun: req.dryRun } : {}) };
    try {
      const out = await f.lambda().send(new InvokeCommand({ FunctionName: f.functionName, InvocationType: 'Event', Payload: Buffer.from(JSON.stringify(payload)) }));
      if (out.StatusCode !== 202) throw new Error(`Lambda answered ${String(out.StatusCode)}, not 202 (queued)`);
      handedOff.push(cluster);
    } catch (err) {
      f.logger.error(`could not hand ${cluster} to its own invocation of ${f.functionName} (${err instanceof Error ? err.message : String(err)}): running it in this one`, { cluster, error: err as Error });
      here.push(cluster);
    }
  })));
  f.logger.info(`${handedOff.length} of ${all.length} clusters handed to their own invocations`, { handedOff, here });
  return { here: here.sort(), handedOff: handedOff.sort() };
}
