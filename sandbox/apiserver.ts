/**
 * A tiny stand-in for kube-apiserver on a sandbox master: `/readyz` is OK only while the
 * host's local etcd member answers `/health` with true, as the real API server's etcd check.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export class ApiserverStandIn {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  static async start(port: number, etcdClientUrl: () => string): Promise<ApiserverStandIn> {
    const server = createServer((req, res) => {
      void (async () => {
        if (req.url === '/livez') {
          res.writeHead(200).end('ok');
          return;
        }
        if (req.url?.startsWith('/readyz')) {
          const ok = await etcdHealthy(etcdClientUrl());
          res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain' }).end(ok ? 'ok' : '[-]etcd failed: reason withheld\nreadyz check failed');
          return;
        }
        res.writeHead(404).end();
      })();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return new ApiserverStandIn(server, (server.address() as AddressInfo).port);
  }

  get readyzUrl(): string {
    return `http://127.0.0.1:${this.port}/readyz`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export async function etcdHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(1500) });
    const body = (await res.json()) as { health?: unknown };
    return body.health === 'true';
  } catch {
    return false;
  }
}
