/**
 * Counts the AWS API calls product code makes, by SDK middleware on each client (issue 8's
 * "API calls per flow"). One count per command sent — waiter polls and paginator pages each
 * count; the SDK's own retries of one command do not.
 */
import type { InitializeMiddleware, MetadataBearer } from '@smithy/types';

/** Any SDK v3 client (only its middleware stack is used). */
interface Countable {
  middlewareStack: { add(mw: InitializeMiddleware<object, MetadataBearer>, opts: { step: 'initialize'; name: string; override: boolean }): void };
}

export class ApiCallCounter {
  private readonly counts = new Map<string, number>();
  /** Every command sent, with its input, in order (the IAM audit judges these). */
  readonly calls: Array<{ service: string; op: string; input: Record<string, unknown> }> = [];

  /** Adds the counting middleware to each client (idempotent per client). */
  attach(...clients: Countable[]): this {
    for (const client of clients) {
      client.middlewareStack.add(
        (next, context) => (args) => {
          const service = String(context.clientName ?? 'unknown').replace(/Client$/, '');
          const op = String(context.commandName ?? 'unknown').replace(/Command$/, '');
          const key = `${service}:${op}`;
          this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
          // A shallow copy without the payload (an upload's Body may be a stream).
          const { Body: _body, ...input } = args.input as Record<string, unknown>;
          this.calls.push({ service, op, input });
          return next(args);
        },
        { step: 'initialize', name: 'qkApiCallCounter', override: true },
      );
    }
    return this;
  }

  reset(): void {
    this.counts.clear();
    this.calls.length = 0;
  }

  total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  /** Calls per operation, most frequent first. */
  byOperation(): Array<[string, number]> {
    return [...this.counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  }
}
