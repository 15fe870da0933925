/**
 * The watchdog's judgement of one cluster from one survey. Pure: no AWS, no I/O.
 *
 * etcd: a leader most answering voters agree on, healthy voters against quorum (margin 0 = one
 * more failure loses quorum), elections since the last probe (raft term delta), DB size against
 * the quota, active alarms. Kubernetes leader election: a Lease not renewed for more than 2×
 * its duration means that component's leader election has stalled. TLS: the certificate each
 * member serves on its client and peer URL, by days left (a warning under 30 days, critical
 * under 7 or expired).
 */
import { z } from 'zod';
import type { Alarm, EndpointStatusReport, Member } from '../etcd/parsers';
import { judgeQuorum } from './judge';
import type { LeaseAnswer, ServedCertificate } from './view';

export type { LeaseAnswer, ServedCertificate } from './view';

export const LEASE_COMPONENTS = ['kube-controller-manager', 'kube-scheduler'] as const;
export type LeaseComponent = (typeof LEASE_COMPONENTS)[number];


export interface LeaseHealth {
  component: string;
  state: 'ok' | 'stalled' | 'missing' | 'unreadable';
  holder: string | null;
  renewTime: string | null;
  durationSec: number | null;
  /** Seconds since the last renewal; null when the Lease could not be read. */
  staleSec: number | null;
  detail: string;
}

export interface ProbeMemory {
  raftTerm: number;
  leaderId: string | null;
  /** The last holder and renewal seen per Lease (the notifier names them in a stalled-Lease message). */
  leases?: Record<string, { holder: string | null; renewTime: string | null }>;
  /** The highest etcd revision any probe has seen (a quorum-loss recovery counts the revisions lost from it). */
  highestRevision?: number;
}


export interface CertificateHealth extends ServedCertificate {
  /** Days until it expires, rounded down to a tenth (negative: expired). */
  daysLeft: number;
}

/** A certificate expiring within this many days is a warning; within CERT_CRITICAL_DAYS (or expired), critical. */
export const CERT_WARN_DAYS = 30;
export const CERT_CRITICAL_DAYS = 7;

export interface HealthAssessment {
  reachable: boolean;
  hasLeader: boolean;
  leaderId: string | null;
  leaderName: string | null;
  raftTerm: number | null;
  /** Elections since the previous probe (raft term increase); 0 on the first probe. */
  leaderChanges: number;
  voters: number;
  healthyVoters: number;
  quorum: number;
  quorumMargin: number;
  dbSizeBytes: number | null;
  dbSizeRatio: number | null;
  alarms: Array<{ member: string; alarm: string }>;
  leases: LeaseHealth[];
  /** What is wrong, worst first; empty when healthy. */
  problems: Problem[];
  /** Every certificate read, earliest expiry first; empty when none could be read (plain http, no openssl). */
  certificates: CertificateHealth[];
  /** Days left of the earliest-expiring certificate; null when none was read. */
  certDaysLeft: number | null;
}

export interface Problem {
  code: 'unreachable' | 'no-leader' | 'quorum-lost' | 'margin-zero' | 'lease-stalled' | 'lease-missing' | 'etcd-alarm' | 'db-size' | 'cert-expiry';
  severity: 'critical' | 'warning';
  subject?: string;
  summary: string;
  action: string;
}

const leaseSchema = z.object({
  spec: z.object({
    holderIdentity: z.string().optional(),
    leaseDurationSeconds: z.number().int().positive().optional(),
    renewTime: z.string().optional(),
  }),
});

export function assessLease(component: string, a: LeaseAnswer | undefined, now: number): LeaseHealth {
  const base = { component, holder: null, renewTime: null, durationSec: null, staleSec: null };
  if (!a || a.httpStatus === 0) return { ...base, state: 'unreadable', detail: a?.error ?? 'not asked' };
  if (a.httpStatus === 404) return { ...base, state: 'missing', detail: `no Lease kube-system/${component}` };
  if (a.httpStatus !== 200) return { ...base, state: 'unreadable', detail: `API server answered HTTP ${a.httpStatus}` };
  let spec: z.infer<typeof leaseSchema>['spec'];
  try {
    spec = leaseSchema.parse(JSON.parse(a.body)).spec;
  } catch {
    return { ...base, state: 'unreadable', detail: 'the API server returned something that is not a Lease' };
  }
  const renewed = spec.renewTime ? Date.parse(spec.renewTime) : NaN;
  const duration = spec.leaseDurationSeconds ?? null;
  const holder = spec.holderIdentity ?? null;
  if (Number.isNaN(renewed) || duration === null) {
    return { ...base, holder, durationSec: duration, state: 'stalled', detail: 'the Lease has no renew time or duration (nobody holds it)' };
  }
  const staleSec = Math.max(0, Math.round((now - renewed) / 1000));
  const stalled = staleSec > 2 * duration;
  return {
    component, holder, renewTime: spec.renewTime ?? null, durationSec: duration, staleSec, state: stalled ? 'stalled' : 'ok',
    detail: `held by ${holder ?? 'nobody'}, renewed ${staleSec} s ago (lease ${duration} s)`,
  };
}

export interface HealthInput {
  members: readonly Member[] | null;
  status: EndpointStatusReport;
  alarms: readonly Alarm[] | null;
  leases: Readonly<Record<string, LeaseAnswer>>;
  components: readonly string[];
  now: number;
  quotaBytes: number;
  previous: ProbeMemory | null;
  /** The certificates members serve (the survey's `certs`); none: unknown. */
  certificates?: readonly ServedCertificate[];
}

const DAY_MS = 86_400_000;
const KUBEADM_CERT: Record<ServedCertificate['kind'], string> = { client: 'etcd-server', peer: 'etcd-peer' };
const HOST_ENV_CERT: Record<ServedCertificate['kind'], string> = { client: 'QK_ETCD_CERT', peer: 'QK_ETCD_PEER_CERT' };

/** Days left per certificate (earliest first), and a problem per member with one expiring within CERT_WARN_DAYS. */
export function assessCertificates(certs: readonly ServedCertificate[], now: number): { certificates: CertificateHealth[]; problems: Problem[] } {
  const certificates = certs
    .map((c) => ({ ...c, daysLeft: Math.floor((Date.parse(c.notAfter) - now) / (DAY_MS / 10)) / 10 }))
    .filter((c) => Number.isFinite(c.daysLeft))
    .sort((a, b) => a.daysLeft - b.daysLeft || a.member.localeCompare(b.member) || a.kind.localeCompare(b.kind));
  const problems: Problem[] = [];
  const members = [...new Set(certificates.filter((c) => c.daysLeft < CERT_WARN_DAYS).map((c) => c.member))];
  for (const member of members) {
    const due = certificates.filter((c) => c.member === member && c.daysLeft < CERT_WARN_DAYS);
    const first = due[0]!;
    const kinds = [...new Set(due.map((c) => c.kind))].sort();
    const what = `${member}'s ${kinds.join(' and ')} certificate${kinds.length > 1 ? 's' : ''}`;
    const date = first.notAfter.replace('T', ' ').replace(/(:\d\d)(\.\d+)?Z$/, '$1 UTC');
    const left = first.daysLeft < 0 ? `expired ${date} (${Math.ceil(-first.daysLeft)} d ago): TLS connections to it fail`
      : `${kinds.length > 1 ? 'expire' : 'expires'} ${date} (in ${first.daysLeft >= 1 ? `${Math.floor(first.daysLeft)} d` : 'less than a day'})`;
    problems.push({
      code: 'cert-expiry', severity: first.daysLeft < CERT_CRITICAL_DAYS ? 'critical' : 'warning', subject: member,
      summary: `etcd ${what} ${left}`,
      action: `Renew it on ${member}'s master: \`kubeadm certs renew ${kinds.map((k) => KUBEADM_CERT[k]).join(' ')}\` (kubeadm), or from your own PKI into the files host.env names (${kinds.map((k) => HOST_ENV_CERT[k]).join(', ')}); etcd serves the new file from its next TLS handshake, and the next probe shows the new date.`,
    });
  }
  return { certificates, problems };
}

export function assessHealth(input: HealthInput): HealthAssessment {
  const leases = input.components.map((c) => assessLease(c, input.leases[c], input.now));
  const problems: Problem[] = [];
  const certs = assessCertificates(input.certificates ?? [], input.now);
  const certificates = { certificates: certs.certificates, certDaysLeft: certs.certificates[0]?.daysLeft ?? null };
  if (!input.members) {
    problems.push({
      code: 'unreachable', severity: 'critical', summary: 'no etcd member answers: the cluster is down or unreachable over SSM',
      action: 'Check the masters\' instances and SSM agents; `quorum-keeper status --cluster <name>` shows each slot.',
    });
    problems.push(...certs.problems); // an expired certificate may be why
    return {
      reachable: false, hasLeader: false, leaderId: null, leaderName: null, raftTerm: null, leaderChanges: 0, voters: 0, healthyVoters: 0,
      quorum: 0, quorumMargin: -1, dbSizeBytes: null, dbSizeRatio: null, alarms: [], leases, problems, ...certificates,
    };
  }
  const members = input.members;
  const h = judgeQuorum({ members: [...members], status: input.status });
  const nameOf = (id: string) => members.find((m) => m.id === id)?.name || id;
  const terms = input.status.statuses.map((s) => s.raftTerm);
  const raftTerm = terms.length ? Math.max(...terms) : null;
  const leaderChanges = input.previous && raftTerm !== null
    ? Math.max(raftTerm - input.previous.raftTerm, h.leader !== null && input.previous.leaderId !== null && h.leader !== input.previous.leaderId ? 1 : 0)
    : 0;
  const dbSizeBytes = input.status.statuses.length ? Math.max(...input.status.statuses.map((s) => s.dbSize)) : null;
  const dbSizeRatio = dbSizeBytes === null ? null : Number((dbSizeBytes / input.quotaBytes).toPrecision(4));
  const alarms = (input.alarms ?? []).filter((a) => a.alarm !== 'NONE').map((a) => ({ member: nameOf(a.memberId), alarm: a.alarm }));

  if (h.leader === null) {
    problems.push({
      code: 'no-leader', severity: 'critical', summary: `etcd has no leader (${h.healthyVoters}/${h.voters} voters healthy, quorum ${h.quorum}): the API server cannot write`,
      action: 'Bring failed masters back (their ASGs replace dead instances); if quorum cannot come back, restore: `quorum-keeper restore --cluster <name> --snapshot latest`.',
    });
  } else if (h.margin < 0) {
    problems.push({
      code: 'quorum-lost', severity: 'critical', summary: `etcd lost quorum: ${h.healthyVoters}/${h.voters} voters healthy, quorum ${h.quorum}`,
      action: 'Bring failed masters back; see `quorum-keeper status --cluster <name>`.',
    });
  } else if (h.margin === 0) {
    problems.push({
      code: 'margin-zero', severity: 'critical', summary: `etcd has no failure tolerance left: ${h.healthyVoters}/${h.voters} voters healthy, quorum ${h.quorum} — one more failure stops the cluster`,
      action: 'Find the unhealthy member with `quorum-keeper status --cluster <name>`; its ASG should replace it — check the lifecycle alerts.',
    });
  }
  for (const a of alarms) {
    problems.push({
      code: 'etcd-alarm', severity: 'critical', subject: a.member, summary: `etcd alarm ${a.alarm} on ${a.member}${a.alarm === 'NOSPACE' ? ': the cluster only accepts reads and deletes' : ''}`,
      action: a.alarm === 'NOSPACE' ? 'Compact and defragment, raise --quota-backend-bytes if needed, then `etcdctl alarm disarm`.' : 'Stop and replace the corrupt member (terminate its instance); do not disarm blindly.',
    });
  }
  if (dbSizeRatio !== null && dbSizeRatio >= 0.8) {
    problems.push({
      code: 'db-size', severity: 'warning', summary: `etcd DB is at ${Math.round(dbSizeRatio * 100)}% of its quota (${dbSizeBytes} bytes)`,
      action: 'Compact and defragment one member at a time, or raise --quota-backend-bytes.',
    });
  }
  for (const l of leases) {
    if (l.state === 'stalled') {
      problems.push({
        code: 'lease-stalled', severity: 'critical', subject: l.component,
        summary: `${l.component} leader election stalled: Lease last renewed ${l.staleSec ?? '?'} s ago by ${l.holder ?? 'nobody'} (lease ${l.durationSec ?? '?'} s)`,
        action: `Check the ${l.component} pods on the masters (crash loop? cannot reach the API server?); the last holder was ${l.holder ?? 'nobody'}.`,
      });
    } else if (l.state === 'missing') {
      problems.push({
        code: 'lease-missing', severity: 'warning', subject: l.component, summary: `${l.component} has no leader-election Lease`,
        action: `Check that ${l.component} runs with --leader-elect on the masters.`,
      });
    }
  }
  problems.push(...certs.problems);
  return {
    reachable: true, hasLeader: h.leader !== null, leaderId: h.leader, leaderName: h.leader ? nameOf(h.leader) : null, raftTerm, leaderChanges,
    voters: h.voters, healthyVoters: h.healthyVoters, quorum: h.quorum, quorumMargin: h.margin, dbSizeBytes, dbSizeRatio, alarms, leases, problems,
    ...certificates,
  };
}
