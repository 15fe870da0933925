/**
 * The harness's HTTP path to etcd (its v3 JSON gateway): the continuous writer, the quorum watch,
 * the apiserver stand-in and test checks. Sandbox etcd runs with mutual TLS, so an `https://`
 * URL is reached with a client certificate: the harness's own (`SandboxPki.current().harness`) or
 * the one given (the apiserver stand-in presents its host's `apiserver-etcd-client`);
 * `harnessEtcd` is etcdctl with the same certificate. Answers and errors are `fetch`'s (undici's
 * fetch with a TLS-configured dispatcher; a refused connection is still
 * `cause.code === 'ECONNREFUSED'`). Plain `http://` URLs go through as they are.
 */
import { Agent, fetch, type RequestInit, type Response } from 'undici';
import { readFileSync } from 'node:fs';
import { type EtcdConnection, EtcdClient, localEtcdRunner, type MemberList, parseMemberList } from '../lib/etcd';
import { SandboxPki, type TlsFiles } from './pki';

const agents = new Map<string, Agent>();

function agentFor(tls: TlsFiles): Agent {
  const k = `${tls.cacert}\0${tls.cert}\0${tls.key}`;
  let a = agents.get(k);
  if (!a) {
    a = new Agent({ connect: { ca: readFileSync(tls.cacert), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } });
    agents.set(k, a);
  }
  return a;
}

/** `fetch` to an etcd URL, with a client certificate when it is https (the harness's unless `tls` is given). */
export function etcdFetch(url: string, init: RequestInit = {}, tls?: TlsFiles): Promise<Response> {
  if (!url.startsWith('https:')) return fetch(url, init);
  return fetch(url, { ...init, dispatcher: agentFor(tls ?? SandboxPki.current().harness) });
}

/**
 * One member's own view of the member list (serializable: `linearizable: false`), which it
 * answers without quorum. etcd 3.5's `etcdctl member list` is linearizable and times out without
 * quorum; 3.4 answered from local state either way (and accepts the field).
 */
export async function localMemberList(clientUrl: string): Promise<MemberList> {
  const r = await etcdFetch(`${clientUrl}/v3/cluster/member/list`, { method: 'POST', body: '{"linearizable":false}', signal: AbortSignal.timeout(5000) });
  const text = await r.text();
  if (!r.ok) throw new Error(`member list (local) at ${clientUrl}: HTTP ${r.status} ${text.slice(0, 300)}`);
  return parseMemberList(text);
}

/** etcdctl on this machine as the harness (its client certificate for https endpoints). */
export function harnessEtcd(endpoints: readonly string[], conn: Omit<EtcdConnection, 'endpoints' | 'tls'> = {}): EtcdClient {
  return new EtcdClient(localEtcdRunner(), { ...conn, endpoints, ...(endpoints.some((u) => u.startsWith('https:')) ? { tls: SandboxPki.current().harness } : {}) });
}

/** Closes the harness's TLS connections (end of a run). */
export async function closeEtcdAgents(): Promise<void> {
  await Promise.all([...agents.values()].map((a) => a.close()));
  agents.clear();
}
