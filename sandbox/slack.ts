/**
 * A local HTTP server standing in for a Slack incoming webhook. It records every POST and
 * answers from a script of status codes (then `fallback`), so tests can make Slack flaky or
 * down. Only what the notifier relies on: 200 "ok" on success, the status code otherwise.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SlackPost {
  at: number;
  status: number;
  payload: { text?: string; blocks?: unknown[] };
}

export class SlackStandIn {
  readonly posts: SlackPost[] = [];
  private script: number[] = [];
  fallback = 200;

  private constructor(private readonly server: Server, readonly url: string) {}

  static async start(): Promise<SlackStandIn> {
    let self: SlackStandIn | null = null;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const s = self!;
        const status = s.script.shift() ?? s.fallback;
        let payload: SlackPost['payload'];
        try {
          payload = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SlackPost['payload'];
        } catch {
          payload = {};
        }
        s.posts.push({ at: Date.now(), status, payload });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : status === 404 ? 'no_service' : 'internal_error');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    self = new SlackStandIn(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/T0SANDBOX/B0SANDBOX/sandboxsecret`);
    return self;
  }

  /** The next answers, in order (e.g. [500, 200]); afterwards `fallback`. */
  answer(...statuses: number[]): void {
    this.script.push(...statuses);
  }

  /** Messages Slack accepted. */
  delivered(): SlackPost[] {
    return this.posts.filter((p) => p.status === 200);
  }

  reset(): void {
    this.posts.length = 0;
    this.script = [];
    this.fallback = 200;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
