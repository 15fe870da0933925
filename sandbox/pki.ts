/**
 * The sandbox's etcd PKI, laid out as kubeadm lays out a control-plane node's
 * (https://kubernetes.io/docs/setup/best-practices/certificates/): one CA per test process (per
 * run of the demo or bench), and for every master, issued at boot, its own
 *
 *   /etc/kubernetes/pki/etcd/ca.crt                       the etcd CA (no key on the host)
 *   /etc/kubernetes/pki/etcd/server.{crt,key}             etcd's client-facing server cert
 *   /etc/kubernetes/pki/etcd/peer.{crt,key}               etcd's peer cert (server + client auth)
 *   /etc/kubernetes/pki/etcd/healthcheck-client.{crt,key} what etcdctl on the host presents
 *   /etc/kubernetes/pki/apiserver-etcd-client.{crt,key}   what kube-apiserver presents to etcd
 *
 * Server and peer certificates name the host's address (127.0.0.1 here) and `localhost`, as
 * kubeadm's do. Every etcd runs with `client-cert-auth` on both URLs, so nothing reaches etcd
 * without a certificate this CA signed. Keys are ECDSA P-256 (a few ms each with openssl; RSA
 * 2048 costs ~100 ms), which etcd and Go's TLS accept as kubeadm's RSA ones.
 */
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir } from './procs';

const run = promisify(execFile);

/** The three files a TLS client (etcdctl, an HTTP client) presents. */
export interface TlsFiles {
  cacert: string;
  cert: string;
  key: string;
}

/** Where a master keeps its etcd certificates, relative to its root (kubeadm's layout). */
export const HOST_PKI = {
  cacert: '/etc/kubernetes/pki/etcd/ca.crt',
  serverCert: '/etc/kubernetes/pki/etcd/server.crt',
  serverKey: '/etc/kubernetes/pki/etcd/server.key',
  peerCert: '/etc/kubernetes/pki/etcd/peer.crt',
  peerKey: '/etc/kubernetes/pki/etcd/peer.key',
  clientCert: '/etc/kubernetes/pki/etcd/healthcheck-client.crt',
  clientKey: '/etc/kubernetes/pki/etcd/healthcheck-client.key',
  apiserverCert: '/etc/kubernetes/pki/apiserver-etcd-client.crt',
  apiserverKey: '/etc/kubernetes/pki/apiserver-etcd-client.key',
} as const;

type Usage = 'server' | 'peer' | 'client';

const EXT_KEY_USAGE: Record<Usage, string> = { server: 'serverAuth,clientAuth', peer: 'serverAuth,clientAuth', client: 'clientAuth' };

export class SandboxPki {
  private static instance: Promise<SandboxPki> | null = null;
  private static ready: SandboxPki | null = null;

  private constructor(
    readonly dir: string,
    readonly caCert: string,
    private readonly caKey: string,
    /** The client certificate the test harness (writer, checks, etcdctl in tests) presents. */
    readonly harness: TlsFiles,
  ) {}

  /** This process's CA (made on first use, in a temp dir the stray reaper removes with the process). */
  static get(): Promise<SandboxPki> {
    SandboxPki.instance ??= SandboxPki.create().then((p) => (SandboxPki.ready = p), (err: unknown) => {
      SandboxPki.instance = null;
      throw err;
    });
    return SandboxPki.instance;
  }

  /** The CA once `get()` has made it (a sandbox makes it as it starts). */
  static current(): SandboxPki {
    if (!SandboxPki.ready) throw new Error('the sandbox PKI is not made yet: await SandboxPki.get() (Sandbox.start does)');
    return SandboxPki.ready;
  }

  private static async create(): Promise<SandboxPki> {
    const dir = makeTempDir('pki');
    const caCert = join(dir, 'ca.crt');
    const caKey = join(dir, 'ca.key');
    await openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', caKey, '-out', caCert, '-days', '3650', '-subj', '/CN=etcd-ca',
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature']);
    const pki = new SandboxPki(dir, caCert, caKey, { cacert: caCert, cert: join(dir, 'harness-client.crt'), key: join(dir, 'harness-client.key') });
    await pki.issue(pki.harness.cert, pki.harness.key, { cn: 'quorum-keeper-harness', usage: 'client' });
    return pki;
  }

  /** Issues a certificate signed by this CA into `certFile` / `keyFile` (directories made, key mode 0600), valid for `days` (365). */
  async issue(certFile: string, keyFile: string, o: { cn: string; usage: Usage; ips?: readonly string[]; dns?: readonly string[]; days?: number }): Promise<void> {
    mkdirSync(dirname(certFile), { recursive: true });
    mkdirSync(dirname(keyFile), { recursive: true });
    const san = [...(o.ips ?? []).map((ip) => `IP:${ip}`), ...(o.dns ?? []).map((d) => `DNS:${d}`)];
    await openssl(['req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-keyout', keyFile, '-out', certFile, '-days', String(o.days ?? 365), '-subj', `/CN=${o.cn}`,
      '-CA', this.caCert, '-CAkey', this.caKey,
      '-addext', 'basicConstraints=critical,CA:FALSE', '-addext', 'keyUsage=critical,digitalSignature,keyEncipherment',
      '-addext', `extendedKeyUsage=${EXT_KEY_USAGE[o.usage]}`,
      ...(san.length ? ['-addext', `subjectAltName=${san.join(',')}`] : [])]);
    chmodSync(keyFile, 0o600);
  }

  /**
   * Server and peer certificates for an etcd member started by hand (outside the host scripts) in
   * `dir`, and the etcd flags that use them: mutual TLS on both URLs, as the sandbox's members.
   */
  async etcdFlags(dir: string, hostname: string): Promise<string[]> {
    const f = (n: string) => join(dir, 'pki', n);
    const names = { ips: ['127.0.0.1'], dns: [hostname, 'localhost'] };
    await Promise.all([
      this.issue(f('server.crt'), f('server.key'), { cn: hostname, usage: 'server', ...names }),
      this.issue(f('peer.crt'), f('peer.key'), { cn: hostname, usage: 'peer', ...names }),
    ]);
    return [
      '--cert-file', f('server.crt'), '--key-file', f('server.key'), '--trusted-ca-file', this.caCert, '--client-cert-auth',
      '--peer-cert-file', f('peer.crt'), '--peer-key-file', f('peer.key'), '--peer-trusted-ca-file', this.caCert, '--peer-client-cert-auth',
    ];
  }

  /** etcdctl's flags for the harness's client certificate. */
  get harnessEtcdctlFlags(): string[] {
    return [`--cacert=${this.harness.cacert}`, `--cert=${this.harness.cert}`, `--key=${this.harness.key}`];
  }

  /** A master's certificates under its root, at kubeadm's paths (HOST_PKI). */
  async issueHost(root: string, o: { hostname: string; ip: string; days?: number }): Promise<void> {
    const at = (p: string) => join(root, p);
    const names = { ips: [...new Set([o.ip, '127.0.0.1'])], dns: [...new Set([o.hostname, 'localhost'])] };
    mkdirSync(dirname(at(HOST_PKI.cacert)), { recursive: true });
    copyFileSync(this.caCert, at(HOST_PKI.cacert));
    await Promise.all([
      this.issue(at(HOST_PKI.serverCert), at(HOST_PKI.serverKey), { cn: o.hostname, usage: 'server', ...names, days: o.days }),
      this.issue(at(HOST_PKI.peerCert), at(HOST_PKI.peerKey), { cn: o.hostname, usage: 'peer', ...names, days: o.days }),
      this.issue(at(HOST_PKI.clientCert), at(HOST_PKI.clientKey), { cn: 'kube-etcd-healthcheck-client', usage: 'client', days: o.days }),
      this.issue(at(HOST_PKI.apiserverCert), at(HOST_PKI.apiserverKey), { cn: 'kube-apiserver-etcd-client', usage: 'client', days: o.days }),
    ]);
  }

  /**
   * Renews a master's etcd server or peer certificate in place, valid for `days`, as
   * `kubeadm certs renew etcd-server|etcd-peer` does: new key and certificate made aside, then
   * each renamed over the old file (etcd reads the pair at every TLS handshake; no restart).
   */
  async renewHost(root: string, o: { hostname: string; ip: string; cert: 'server' | 'peer'; days: number }): Promise<void> {
    const [cert, key] = o.cert === 'server' ? [HOST_PKI.serverCert, HOST_PKI.serverKey] : [HOST_PKI.peerCert, HOST_PKI.peerKey];
    const names = { ips: [...new Set([o.ip, '127.0.0.1'])], dns: [...new Set([o.hostname, 'localhost'])] };
    await this.issue(join(root, `${cert}.new`), join(root, `${key}.new`), { cn: o.hostname, usage: o.cert, ...names, days: o.days });
    renameSync(join(root, `${key}.new`), join(root, key));
    renameSync(join(root, `${cert}.new`), join(root, cert));
  }
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args[0]} failed: ${(e.stderr ?? e.message).trim().split('\n').slice(-3).join(' | ')}`, { cause: err });
  }
}
