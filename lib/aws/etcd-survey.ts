/**
 * One SSM round trip that tells a flow what the cluster looks like from one master:
 * `etcd-query.sh survey` runs member list, endpoint status --cluster, endpoint health
 * --cluster and alarm list side by side through that master's member (plus any kube-system
 * Leases asked for, and the expiry of the certificate every member serves on its client and peer
 * URL) and returns each raw answer; they are parsed here with the same parsers as single
 * commands. Three sequential SSM commands (≥ 2 s each with AWS's waiter floor) become one.
 */
import type { SSMClient } from '@aws-sdk/client-ssm';
import { z } from 'zod';
import { lastLine, OutputTruncated, outputTruncated, runHostScript, type RunOptions, runStderr } from './run-command';
import { agentOnline } from './ssm-agent';
import {
  type Alarm, classifyEtcdctlError, EtcdError, summariseStderr, type EndpointHealth, type EndpointStatusReport, type MemberList, parseAlarmList, parseEndpointHealth, parseEndpointStatus, parseMemberList,
} from '../etcd';
import type { ServedCertificate } from '../domain/health';
import type { EtcdView } from '../domain/view';
import type { HostScriptBundle } from '../host/command';

const query = z.object({ rc: z.number().int(), out: z.string(), err: z.string() });
/** A certificate read off a member's URL: notAfter in epoch seconds, null when it could not be read. */
const servedCert = z.object({ kind: z.enum(['client', 'peer']), url: z.string(), notAfter: z.number().int().nonnegative().max(1e12).nullable() });
const surveySchema = z.object({
  local: z.object({
    running: z.boolean(), healthy: z.boolean(), clientUrl: z.string(), peerUrl: z.string(),
    // Hosts running host scripts from before these fields say nothing: null.
    clusterVersion: z.string().nullable().default(null), serverVersion: z.string().nullable().default(null),
  }),
  queries: z.object({ members: query, localMembers: query, status: query, health: query, alarms: query }).partial(),
  leases: z.record(z.string(), query),
  // null: not read (plain http, no openssl, etcd down here, or a host script from before this field).
  certs: z.array(servedCert).nullable().default(null),
});

export interface LeaseAnswer {
  /** HTTP status from the API server; 0 when it could not be reached. */
  httpStatus: number;
  body: string;
  error: string | null;
}

export interface EtcdSurvey {
  instanceId: string;
  member: string;
  /** This member's own status; `clusterVersion` (its /version `etcdcluster`): the lowest minor any member runs. */
  local: { running: boolean; healthy: boolean; clientUrl: string; peerUrl: string; clusterVersion: string | null; serverVersion: string | null };
  /** null when this member could not answer (its etcd is down, or the answer was unreadable). */
  members: MemberList | null;
  /**
   * Where `members` comes from: `quorum` — a linearizable read (through the leader); `local` —
   * this member's own view, read when the linearizable one failed (etcd 3.5 has no member list
   * without quorum otherwise): possibly stale, never a basis for a membership change.
   */
  membersFrom: 'quorum' | 'local' | null;
  /** Every member's status; members that did not answer are in `unreachable`. */
  status: EndpointStatusReport;
  health: EndpointHealth[];
  alarms: Alarm[] | null;
  leases: Record<string, LeaseAnswer>;
  /**
   * The certificate each member serves on its (first) client and peer URL, read over TLS from
   * this master; `member` is the etcd member name (its ID while it has none; the URL when no
   * member list names it). Empty when unknown: plain http, no openssl here, etcd down here.
   */
  certs: ServedCertificate[];
  /** Why a part is missing, for logs and status output. */
  errors: string[];
}

const text = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');

/** Parses the JSON line `etcd-query.sh survey` prints. Throws on a malformed answer. */
export function parseSurvey(instanceId: string, member: string, stdout: string): EtcdSurvey {
  const raw = surveySchema.parse(JSON.parse(lastLine(stdout)));
  const errors: string[] = [];
  const q = raw.queries;
  const attempt = <T>(what: string, fn: () => T): T | null => {
    try {
      return fn();
    } catch (err) {
      errors.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      return null;
    }
  };
  if (!raw.local.running) errors.push(`etcd is not running on ${instanceId}`);
  let membersFrom: EtcdSurvey['membersFrom'] = null;
  let members: MemberList | null = null;
  const localView = q.localMembers?.rc === 0 ? localMemberList(text(q.localMembers.out)) : null;
  if (q.members && q.members.rc === 0) {
    members = attempt('member list', () => parseMemberList(text(q.members!.out)));
    if (members) membersFrom = 'quorum';
  } else if (q.members) {
    // No linearizable list (no quorum on etcd 3.5): this member's own view, if it gave one.
    if (localView) [members, membersFrom] = [localView, 'local'];
    else errors.push(`member list: ${lastLine(text(q.members.err))}`);
  }
  const expected = members?.members.filter((m) => m.started).flatMap((m) => m.clientUrls.slice(0, 1)) ?? [];
  const status = (q.status && attempt('endpoint status', () => parseEndpointStatus(text(q.status!.out), text(q.status!.err), expected)))
    ?? { statuses: [], unreachable: expected.map((endpoint) => ({ endpoint, error: 'not asked' })) };
  const health = (q.health && attempt('endpoint health', () => parseEndpointHealth(text(q.health!.out)))) ?? [];
  const alarms = q.alarms && q.alarms.rc === 0 ? attempt('alarm list', () => parseAlarmList(text(q.alarms!.out))) : null;
  // Whose certificate: the member list that names the URL (the script read the URLs of this
  // member's own view, so that one names them all).
  const views = [members, localView];
  const owner = (kind: 'client' | 'peer', url: string) => {
    for (const v of views) {
      const m = v?.members.find((x) => (kind === 'client' ? x.clientUrls : x.peerUrls).includes(url));
      if (m) return m.name || m.id;
    }
    return url;
  };
  const certs: ServedCertificate[] = [];
  const unread: string[] = [];
  for (const c of raw.certs ?? []) {
    const member = owner(c.kind, c.url);
    if (c.notAfter === null) unread.push(`${member} ${c.kind} ${c.url}`);
    else certs.push({ member, kind: c.kind, url: c.url, notAfter: new Date(c.notAfter * 1000).toISOString() });
  }
  if (unread.length) errors.push(`certificates not read (no TLS answer within 3 s): ${unread.join(', ')}`);
  const leases: Record<string, LeaseAnswer> = {};
  for (const [name, a] of Object.entries(raw.leases)) {
    const out = text(a.out);
    const cut = out.lastIndexOf('\n');
    const code = Number(out.slice(cut + 1));
    leases[name] = {
      httpStatus: a.rc === 0 && Number.isInteger(code) ? code : 0,
      body: cut >= 0 ? out.slice(0, cut) : '',
      error: a.rc === 0 ? null : lastLine(text(a.err)) || `curl exit ${a.rc}`,
    };
  }
  return { instanceId, member, local: raw.local, members, membersFrom, status, health, alarms, leases, certs, errors };
}

/** The HTTP gateway's member list (`{"header":…,"members":[…]}`), or null for an error answer. */
function localMemberList(body: string): MemberList | null {
  try {
    return parseMemberList(body);
  } catch {
    return null;
  }
}

/**
 * Surveys the cluster through the first candidate whose SSM agent is online and whose etcd
 * answers the member list. Returns that survey — or, when no member answers, the last survey
 * seen (null when no host answered) — and why each master passed over was.
 * `certs`: read the certificate every member serves too (the probe and status; a TLS handshake
 * per URL that the flows which only need the members skip).
 */
export async function surveyCluster(
  ssm: SSMClient, scripts: HostScriptBundle, candidates: ReadonlyArray<{ instanceId: string; member: string }>, opts: RunOptions,
  leases: readonly string[] = [], read: { certs?: boolean } = {},
): Promise<{ survey: EtcdSurvey | null; answered: boolean; tried: string[] }> {
  let last: EtcdSurvey | null = null;
  const tried: string[] = [];
  for (const c of candidates) {
    if (!(await agentOnline(ssm, c.instanceId))) {
      tried.push(`${c.member}: SSM agent offline`);
      continue;
    }
    const args = ['survey', ...leases.flatMap((l) => ['--lease', l]), ...(read.certs ? ['--certs'] : [])];
    const res = await runHostScript(ssm, scripts, c.instanceId, 'etcd-query.sh', args, opts);
    if (res.exitCode !== 0) {
      tried.push(`${c.member}: survey failed (${res.status}): ${lastLine(res.stderr)}`);
      continue;
    }
    // An answer SSM cut off, or one that does not parse, is no answer: try the next master.
    let s: EtcdSurvey;
    try {
      if (outputTruncated(res)) throw new OutputTruncated('etcd-query.sh', c.instanceId);
      s = parseSurvey(c.instanceId, c.member, res.stdout);
    } catch (err) {
      tried.push(`${c.member}: unreadable survey: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    last = s;
    if (s.local.running && s.members) return { survey: s, answered: true, tried };
    tried.push(`${c.member}: ${s.errors[0] ?? 'no answer'}`);
  }
  return { survey: last, answered: false, tried };
}

/** A survey as the view's etcd part: `via` only when a member answered the member list. */
export function etcdViewOf(survey: EtcdSurvey | null, answered: boolean, tried: readonly string[]): EtcdView {
  return {
    via: survey && answered ? { member: survey.member, instanceId: survey.instanceId, clientUrl: survey.local.clientUrl, peerUrl: survey.local.peerUrl } : null,
    members: survey?.members?.members ?? null,
    clusterId: survey?.members?.clusterId ?? null,
    membersFrom: survey?.membersFrom ?? null,
    status: survey?.status ?? { statuses: [], unreachable: [] },
    clusterVersion: survey?.local.clusterVersion ?? null,
    alarms: survey?.alarms ?? null,
    leases: survey?.leases ?? {},
    certs: survey?.certs ?? [],
    tried: [...tried],
    errors: survey?.errors ?? [],
  };
}

const viewSchema = z.object({ members: query, status: query, asked: z.array(z.string()).nullable() });

export interface MembershipView {
  members: MemberList;
  /** Status of every member asked; the ones that did not answer are in `unreachable`. */
  status: EndpointStatusReport;
}

/**
 * Member list and endpoint status through one master in ONE SSM round trip (`etcd-query.sh
 * view`): the two reads every membership decision starts from. `skipStale` names a member being
 * replaced by a host at `peerUrl`: its old incarnation (any other peer URL) is dead and is not
 * asked (dialling it costs the whole status timeout); it simply has no status. Throws an
 * EtcdError when the member list cannot be read (no quorum, etcd down), like `memberList()`.
 */
export async function viewCluster(
  ssm: SSMClient, scripts: HostScriptBundle, instanceId: string, opts: RunOptions, skipStale?: { member: string; peerUrl: string },
): Promise<MembershipView> {
  const args = ['view', ...(skipStale ? ['--skip-stale', `${skipStale.member}=${skipStale.peerUrl}`] : [])];
  const res = await runHostScript(ssm, scripts, instanceId, 'etcd-query.sh', args, opts);
  const what = `etcd-query.sh view on ${instanceId}`;
  if (res.exitCode !== 0) {
    const stderr = runStderr(res);
    throw new EtcdError(classifyEtcdctlError(stderr), `${what}: ${summariseStderr(stderr) || `exit ${res.exitCode}`}`, { command: what, exitCode: res.exitCode, stderr: stderr.slice(-4000) });
  }
  if (outputTruncated(res)) throw new OutputTruncated('etcd-query.sh', instanceId);
  const raw = viewSchema.parse(JSON.parse(lastLine(res.stdout)));
  if (raw.members.rc !== 0) {
    const stderr = text(raw.members.err);
    throw new EtcdError(classifyEtcdctlError(stderr), `member list via ${what}: ${summariseStderr(stderr)}`, { command: `${what}: member list`, exitCode: raw.members.rc, stderr });
  }
  const members = parseMemberList(text(raw.members.out));
  const asked = raw.asked ?? members.members.filter((m) => m.started).flatMap((m) => m.clientUrls.slice(0, 1));
  return { members, status: parseEndpointStatus(text(raw.status.out), text(raw.status.err), asked) };
}

/** The peer URL `instanceId` advertises, or undefined when it cannot be asked. */
export async function peerUrlOf(ssm: SSMClient, scripts: HostScriptBundle, instanceId: string, opts: RunOptions): Promise<string | undefined> {
  if (!(await agentOnline(ssm, instanceId))) return undefined;
  const res = await runHostScript(ssm, scripts, instanceId, 'etcd-member.sh', ['urls'], opts);
  if (res.exitCode !== 0) return undefined;
  try {
    const url = (JSON.parse(lastLine(res.stdout)) as { peerUrl?: unknown }).peerUrl;
    return typeof url === 'string' ? url : undefined;
  } catch {
    return undefined;
  }
}
