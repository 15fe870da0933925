/**
 * A tiny stand-in for kube-apiserver on a sandbox master: it reaches its local etcd as
 * kube-apiserver does (with its own client certificate, `apiserver-etcd-client`, when etcd is
 * https). `/readyz` is OK only while the host's local etcd member answers `/health?exclude=NOSPACE` with true: the real API server's
 * etcd check is a read, which a leader serves even while the NOSPACE alarm refuses writes.
 * It also serves kube-system Leases (GET), read from etcd like the real API server does (key
 * `/registry/leases/kube-system/<name>`, here stored as JSON), so a Lease is unreadable while
 * etcd has no quorum. `writeLease` plays kube-scheduler / kube-controller-manager renewing one.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { etcdFetch } from './etcd-http';
import type { TlsFiles } from './pki';

export class ApiserverStandIn {
  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** `tls`: the client certificate it presents to etcd (kube-apiserver's `--etcd-certfile`), for an https etcd. */
  static async start(port: number, etcdClientUrl: () => string, tls?: TlsFiles): Promise<ApiserverStandIn> {
    const server = createServer((req, res) => {
      void (async () => {
        if (req.url === '/livez') {
          res.writeHead(200).end('ok');
          return;
        }
        if (req.url?.startsWith('/readyz')) {
          const ok = await etcdHealthy(etcdClientUrl(), tls);
          res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain' }).end(ok ? 'ok' : '[-]etcd failed: reason withheld\nreadyz check failed');
          return;
        }
        const lease = LEASE_PATH.exec(req.url ?? '');
        if (lease && req.method === 'GET') {
          const { status, body } = await readLease(etcdClientUrl(), lease[1]!, tls);
          res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
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

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get readyzUrl(): string {
    return `http://127.0.0.1:${this.port}/readyz`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

export async function etcdHealthy(clientUrl: string, tls?: TlsFiles): Promise<boolean> {
  try {
    const res = await etcdFetch(`${clientUrl}/health?exclude=NOSPACE`, { signal: AbortSignal.timeout(1500) }, tls);
    const body = (await res.json()) as { health?: unknown };
    return body.health === 'true';
  } catch {
    return false;
  }
}

const LEASE_PATH = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/kube-system\/leases\/([a-z0-9.-]{1,63})$/;
const leaseKey = (name: string) => Buffer.from(`/registry/leases/kube-system/${name}`).toString('base64');
const statusBody = (code: number, reason: string, message: string) => ({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message, reason, code });

async function readLease(clientUrl: string, name: string, tls?: TlsFiles): Promise<{ status: number; body: unknown }> {
  try {
    const r = await etcdFetch(`${clientUrl}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: leaseKey(name) }), signal: AbortSignal.timeout(2000) }, tls);
    const j = (await r.json()) as { kvs?: Array<{ value: string }>; error?: string; message?: string };
    if (!r.ok) return { status: 500, body: statusBody(500, 'InternalError', `etcd: ${j.message ?? j.error ?? r.status}`) };
    const kv = j.kvs?.[0];
    if (!kv) return { status: 404, body: statusBody(404, 'NotFound', `leases.coordination.k8s.io "${name}" not found`) };
    return { status: 200, body: JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')) as unknown };
  } catch (err) {
    return { status: 500, body: statusBody(500, 'InternalError', `etcd: ${err instanceof Error ? err.message : String(err)}`) };
  }
}

export interface LeaseSpec {
  holderIdentity: string;
  leaseDurationSeconds: number;
  renewTime: Date;
  acquireTime?: Date;
  leaseTransitions?: number;
}

/** k8s MicroTime: RFC 3339 with microseconds. */
const microTime = (d: Date) => d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

/** Writes a coordination.k8s.io/v1 Lease into etcd as a component renewing it would. */
export async function writeLease(clientUrl: string, name: string, spec: LeaseSpec): Promise<void> {
  const lease = {
    kind: 'Lease', apiVersion: 'coordination.k8s.io/v1',
    metadata: { name, namespace: 'kube-system' },
    spec: {
      holderIdentity: spec.holderIdentity, leaseDurationSeconds: spec.leaseDurationSeconds,
      acquireTime: microTime(spec.acquireTime ?? spec.renewTime), renewTime: microTime(spec.renewTime), leaseTransitions: spec.leaseTransitions ?? 0,
    },
  };
  const r = await etcdFetch(`${clientUrl}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: leaseKey(name), value: Buffer.from(JSON.stringify(lease)).toString('base64') }) });
  if (!r.ok) throw new Error(`writing Lease ${name} failed: HTTP ${r.status} ${await r.text()}`);
}
