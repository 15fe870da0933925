/**
 * Lambda's Invoke for the functions a test registers (moto runs a function's code only in
 * Docker, which the sandbox has not got). As Lambda does
 * (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html,
 * https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html):
 *   - InvocationType `Event`: 202 with an empty body at once; the event is queued and the
 *     handler runs later, on its own, retried on error `maximumRetryAttempts` times (the
 *     function's event-invoke config; Lambda's default is 2);
 *   - `RequestResponse` (the default): the handler runs, 200 with its JSON result;
 *     a handler error is 200 with `X-Amz-Function-Error: Unhandled` and the error as payload;
 *   - an unknown function: 404 ResourceNotFoundException ("Function not found: <arn>").
 * The name may be a function name or its ARN. Async payloads up to 256 KB (Lambda's quota;
 * larger: 413 RequestEntityTooLargeException).
 */
import type { Context } from 'aws-lambda';
import { invokeAsync } from '../lambda';
import type { Handler, ParsedRequest, Reply, Routes } from '../protocol';

export interface SandboxFunction {
  handler: (event: unknown, context: Context) => Promise<unknown>;
  /** The function's asynchronous retries (serverless.yml `maximumRetryAttempts`). */
  maximumRetryAttempts?: number;
}

export interface LambdaRun {
  functionName: string;
  type: 'Event' | 'RequestResponse';
  payload: unknown;
  /** Ends when the handler (and its retries) has; `result` is its last answer, `error` its last failure. */
  done: Promise<{ result?: unknown; error?: string }>;
}

const ASYNC_PAYLOAD_LIMIT = 256 * 1024;

export class LambdaModel {
  readonly functions = new Map<string, SandboxFunction>();
  readonly runs: LambdaRun[] = [];
  /** @param queueMs between Invoke's 202 and the handler starting (Lambda's internal queue; the sandbox's latency profile). */
  constructor(private readonly queueMs: () => number = () => 0) {}

  register(name: string, f: SandboxFunction): void {
    this.functions.set(name, f);
  }

  /** Every run so far ended (and any run those made). */
  async settled(): Promise<void> {
    for (let seen = 0; seen < this.runs.length; seen = this.runs.length) await Promise.all(this.runs.map((r) => r.done));
  }

  async clear(): Promise<void> {
    await this.settled();
    this.functions.clear();
    this.runs.length = 0;
  }

  context(functionName: string): Context {
    return {
      functionName, functionVersion: '$LATEST', invokedFunctionArn: `arn:aws:lambda:us-east-1:123456789012:function:${functionName}`,
      awsRequestId: `sandbox-${this.runs.length}`, memoryLimitInMB: '1024', logGroupName: `/aws/lambda/${functionName}`, logStreamName: 'sandbox',
      callbackWaitsForEmptyEventLoop: true, getRemainingTimeInMillis: () => 900_000, done: () => undefined, fail: () => undefined, succeed: () => undefined,
    };
  }

  /** An Invoke (POST …/functions/<name>/invocations); null for any other Lambda operation. */
  async invoke(r: ParsedRequest): Promise<Reply | null> {
    const m = r.method === 'POST' ? /^\/2015-03-31\/functions\/([^/]+)\/invocations/.exec(r.url) : null;
    if (!m) return null;
    const named = decodeURIComponent(m[1]!);
    const name = /:function:([^:]+)/.exec(named)?.[1] ?? named;
    const f = this.functions.get(name);
    if (!f) return lambdaError(404, 'ResourceNotFoundException', `Function not found: arn:aws:lambda:us-east-1:123456789012:function:${name}`);
    const type = String(r.headers['x-amz-invocation-type'] ?? 'RequestResponse');
    let payload: unknown;
    try {
      payload = r.body.length ? JSON.parse(r.body.toString()) : {};
    } catch {
      return lambdaError(400, 'InvalidRequestContentException', 'Could not parse request body into json');
    }
    if (type === 'Event') {
      if (r.body.length > ASYNC_PAYLOAD_LIMIT) return lambdaError(413, 'RequestEntityTooLargeException', `Request must be smaller than ${ASYNC_PAYLOAD_LIMIT} bytes for the InvokeAsync operation`);
      const ctx = this.context(name);
      const done = new Promise((res) => setTimeout(res, this.queueMs()))
        .then(() => invokeAsync((e) => f.handler(e, ctx), payload, { maximumRetryAttempts: f.maximumRetryAttempts ?? 2, delayMs: 100 }))
        .then((o) => (o.result !== undefined ? { result: o.result } : { error: `failed after ${o.attempts} attempt(s)` }));
      this.runs.push({ functionName: name, type: 'Event', payload, done });
      return { status: 202, headers: { 'x-amzn-requestid': `sandbox-${this.runs.length}` }, body: '' };
    }
    if (type !== 'RequestResponse') return lambdaError(400, 'InvalidParameterValueException', `sandbox: InvocationType ${type} is not modelled`);
    const done = f.handler(payload, this.context(name)).then(
      (result): { result?: unknown; error?: string } => ({ result }),
      (err: unknown): { result?: unknown; error?: string } => ({ error: err instanceof Error ? err.message : String(err) }),
    );
    this.runs.push({ functionName: name, type: 'RequestResponse', payload, done });
    const o = await done;
    return {
      status: 200,
      headers: { 'content-type': 'application/json', ...(o.error !== undefined ? { 'x-amz-function-error': 'Unhandled' } : {}) },
      body: JSON.stringify(o.error !== undefined ? { errorType: 'Error', errorMessage: o.error } : o.result ?? null),
    };
  }
}

function lambdaError(status: number, type: string, message: string): Reply {
  return { status, headers: { 'content-type': 'application/json', 'x-amzn-errortype': type }, body: JSON.stringify({ Type: 'User', message }) };
}

/** Invoke here; every other Lambda operation (the template test's stack) to moto. */
export function lambdaRoutes(model: LambdaModel, forward: Handler): Routes {
  // REST: every Lambda request parses to the service alone (no Action).
  return { 'lambda:': async (r) => (await model.invoke(r)) ?? forward(r) };
}
