/**
 * Parsers for etcdctl 3.4 / 3.5 `-w json` output and etcd's HTTP gateway answers (recorded
 * samples in test/fixtures).
 * IDs come out as MemberId (hex), never as JS numbers; unreachable endpoints and
 * "no leader" are modelled explicitly instead of being inferred from exit codes.
 */
import { z } from 'zod';
import { EtcdError } from './errors';
import { memberIdFromBigInt, type MemberId } from './ids';
import { parseJsonLossless } from './json';

/**
 * etcdctl prints 64-bit integers as JSON numbers; etcd's HTTP gateway (grpc-gateway, proto3 JSON
 * mapping) as decimal strings. Both are read, exactly.
 */
const decimal = z.string().regex(/^[0-9]{1,20}$/).transform((v) => BigInt(v));
const u64 = z.union([z.number().int().nonnegative(), z.bigint().nonnegative(), decimal]);
const id = u64.transform((v) => memberIdFromBigInt(BigInt(v)));
/** Counters that fit a double (raft indexes, sizes, revisions); a bigint here means corrupt output. */
const count = z.union([z.number().int().nonnegative(), z.bigint(), decimal]).transform((v, ctx) => {
  if (typeof v === 'bigint') {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
      ctx.addIssue({ code: 'custom', message: 'counter above 2^53' });
      return z.NEVER;
    }
    return Number(v);
  }
  return v;
});

const header = z.object({ cluster_id: id, member_id: id, raft_term: count.optional(), revision: count.optional() });

const memberSchema = z.object({
  ID: id,
  name: z.string().optional(),
  peerURLs: z.array(z.string()).optional(),
  clientURLs: z.array(z.string()).optional(),
  isLearner: z.boolean().optional(),
});

export interface Member {
  id: MemberId;
  /** Empty until the member has started and published its name. */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
  /** A member that was added but never started has no name and no client URLs. */
  started: boolean;
}

export interface MemberList {
  clusterId: MemberId;
  /** The member that answered. */
  respondingMemberId: MemberId;
  raftTerm: number;
  members: Member[];
}

function toMember(m: z.infer<typeof memberSchema>): Member {
  const name = m.name ?? '';
  const clientUrls = m.clientURLs ?? [];
  return {
    id: m.ID,
    name,
    peerUrls: m.peerURLs ?? [],
    clientUrls,
    isLearner: m.isLearner ?? false,
    started: name !== '' || clientUrls.length > 0,
  };
}

function parseWith<T>(schema: z.ZodType<T>, text: string, what: string): T {
  let raw: unknown;
  try {
    raw = parseJsonLossless(text.trim());
  } catch (cause) {
    throw new EtcdError('bad-output', `${what}: output is not JSON: ${JSON.stringify(text.slice(0, 200))}`, {}, { cause });
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    throw new EtcdError('bad-output', `${what}: unexpected JSON shape: ${z.prettifyError(result.error)}`);
  }
  return result.data;
}

const memberListSchema = z.object({ header, members: z.array(memberSchema).default([]) });

export function parseMemberList(stdout: string): MemberList {
  const data = parseWith(memberListSchema, stdout, 'member list');
  return {
    clusterId: data.header.cluster_id,
    respondingMemberId: data.header.member_id,
    raftTerm: data.header.raft_term ?? 0,
    members: data.members.map(toMember),
  };
}

const memberAddSchema = z.object({ header, member: memberSchema, members: z.array(memberSchema).default([]) });

export interface MemberAddResult {
  member: Member;
  members: Member[];
}

export function parseMemberAdd(stdout: string): MemberAddResult {
  const data = parseWith(memberAddSchema, stdout, 'member add');
  return { member: toMember(data.member), members: data.members.map(toMember) };
}

const statusSchema = z.object({
  header,
  version: z.string(),
  dbSize: count,
  dbSizeInUse: count.optional(),
  leader: id.optional(),
  raftIndex: count,
  raftTerm: count,
  raftAppliedIndex: count.optional(),
  isLearner: z.boolean().optional(),
  errors: z.array(z.string()).optional(),
});

const endpointStatusSchema = z.array(z.object({ Endpoint: z.string(), Status: statusSchema }));

export interface EndpointStatus {
  endpoint: string;
  memberId: MemberId;
  clusterId: MemberId;
  version: string;
  dbSize: number;
  dbSizeInUse: number | null;
  /** null when the member reports no leader (etcd 3.4 omits the field and exits 0). */
  leader: MemberId | null;
  isLeader: boolean;
  isLearner: boolean;
  raftIndex: number;
  raftAppliedIndex: number | null;
  raftTerm: number;
  revision: number | null;
  /** Raw error strings etcd attached, e.g. `etcdserver: no leader`, `memberID:… alarm:NOSPACE`. */
  errors: string[];
}

export interface UnreachableEndpoint {
  endpoint: string;
  error: string;
}

export interface EndpointStatusReport {
  statuses: EndpointStatus[];
  unreachable: UnreachableEndpoint[];
}

/** `Failed to get the status of endpoint http://… (context deadline exceeded)` */
const statusFailureLine = /^Failed to get the status of endpoint (\S+) \((.*)\)$/;

/**
 * `endpoint status [--cluster] -w json`. etcdctl exits 1 when any endpoint failed but still
 * prints the ones that answered on stdout and names the failed ones on stderr; both are kept.
 * With `expected`, an endpoint absent from both is reported unreachable too.
 */
export function parseEndpointStatus(stdout: string, stderr = '', expected: readonly string[] = []): EndpointStatusReport {
  const trimmed = stdout.trim();
  const rows = trimmed === '' ? [] : parseWith(endpointStatusSchema, trimmed, 'endpoint status');
  const statuses = rows.map(({ Endpoint, Status: s }): EndpointStatus => {
    const leader = s.leader ?? null;
    const errors = s.errors ?? [];
    return {
      endpoint: Endpoint,
      memberId: s.header.member_id,
      clusterId: s.header.cluster_id,
      version: s.version,
      dbSize: s.dbSize,
      dbSizeInUse: s.dbSizeInUse ?? null,
      // etcd 3.4 reports leader 0 / omits it when it has none.
      leader: leader === null || leader === ('0' as MemberId) ? null : leader,
      isLeader: leader !== null && leader === s.header.member_id,
      isLearner: s.isLearner ?? false,
      raftIndex: s.raftIndex,
      raftAppliedIndex: s.raftAppliedIndex ?? null,
      raftTerm: s.raftTerm,
      revision: s.header.revision ?? null,
      errors,
    };
  });
  const unreachable: UnreachableEndpoint[] = [];
  for (const line of stderr.split('\n')) {
    const m = statusFailureLine.exec(line.trim());
    if (m?.[1] !== undefined) unreachable.push({ endpoint: m[1], error: m[2] ?? '' });
  }
  const seen = new Set([...statuses.map((s) => s.endpoint), ...unreachable.map((u) => u.endpoint)]);
  for (const ep of expected) if (!seen.has(ep)) unreachable.push({ endpoint: ep, error: 'no answer' });
  return { statuses, unreachable };
}

/** True when the status carries etcd's "no leader" error or no leader at all. */
export function hasNoLeader(s: EndpointStatus): boolean {
  return s.leader === null || s.errors.some((e) => e.includes('no leader'));
}

const healthSchema = z.array(
  z.object({ endpoint: z.string(), health: z.boolean(), took: z.string().optional(), error: z.string().optional() }),
);

export interface EndpointHealth {
  endpoint: string;
  healthy: boolean;
  took: string | null;
  error: string | null;
}

/** `endpoint health [--cluster] -w json`: exits 1 when any is unhealthy, but the JSON lists all. */
export function parseEndpointHealth(stdout: string): EndpointHealth[] {
  const trimmed = stdout.trim();
  if (trimmed === '') return [];
  return parseWith(healthSchema, trimmed, 'endpoint health').map((h) => ({
    endpoint: h.endpoint,
    healthy: h.health,
    took: h.took ?? null,
    error: h.error ?? null,
  }));
}

export type AlarmType = 'NONE' | 'NOSPACE' | 'CORRUPT' | 'UNKNOWN';
const alarmNames: Record<number, AlarmType> = { 0: 'NONE', 1: 'NOSPACE', 2: 'CORRUPT' };

const alarmSchema = z.object({
  alarms: z.array(z.object({ memberID: id, alarm: z.union([z.number().int(), z.string()]) })).optional(),
});

export interface Alarm {
  memberId: MemberId;
  alarm: AlarmType;
}

export function parseAlarmList(stdout: string): Alarm[] {
  const data = parseWith(alarmSchema, stdout, 'alarm list');
  return (data.alarms ?? []).map((a) => ({
    memberId: a.memberID,
    alarm: typeof a.alarm === 'number' ? (alarmNames[a.alarm] ?? 'UNKNOWN') : ((['NONE', 'NOSPACE', 'CORRUPT'] as const).find((n) => n === a.alarm) ?? 'UNKNOWN'),
  }));
}

const snapshotStatusSchema = z.object({ hash: u64, revision: count, totalKey: count, totalSize: count });

export interface SnapshotStatus {
  /** CRC32 hash of the snapshot as etcd computes it (uint32, kept as decimal text). */
  hash: string;
  revision: number;
  totalKeys: number;
  totalSize: number;
}

/** `etcdctl snapshot status -w json` (3.4) and `etcdutl snapshot status -w json` (3.5+) print the same shape. */
export function parseSnapshotStatus(stdout: string): SnapshotStatus {
  const s = parseWith(snapshotStatusSchema, stdout, 'snapshot status');
  return { hash: BigInt(s.hash).toString(10), revision: s.revision, totalKeys: s.totalKey, totalSize: s.totalSize };
}

/** `Leadership transferred from <hex> to <hex>` */
export function parseMoveLeader(stdout: string): { from: MemberId; to: MemberId } {
  const m = /Leadership transferred from ([0-9a-f]+) to ([0-9a-f]+)/.exec(stdout);
  if (m?.[1] === undefined || m[2] === undefined) {
    throw new EtcdError('bad-output', `move-leader: unexpected output ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  return { from: memberIdFromBigInt(BigInt(`0x${m[1]}`)), to: memberIdFromBigInt(BigInt(`0x${m[2]}`)) };
}
