/** `quorum-keeper status` as text: an aligned table with a verdict line and the problems. */
import type { CertificateHealth } from '../../lib/domain/health';
import type { ClusterStatus } from '../../lib/flows/status';
import { age } from './format';

/** The status as an aligned text table with a verdict line and the problems. */
export function renderStatus(s: ClusterStatus): string {
  const header = ['MEMBER', 'AZ', 'ASG', 'INSTANCE', 'LIFECYCLE', 'VOLUME', 'ATTACHED', 'ETCD', 'VERSION', 'RAFT LAG', 'LB'];
  const rows = s.members.map((m) => [
    m.member, m.az ?? '-', m.asg, m.instanceId ?? '-', m.lifecycleState ?? '-', m.volumeId ?? '-',
    m.volumeAttachedTo ? (m.volumeAttachedTo === m.instanceId ? 'yes' : m.volumeAttachedTo) : (m.volumeState ?? '-'),
    m.etcd, m.version ?? '-', m.raftLag === null ? '-' : String(m.raftLag), m.lb,
  ]);
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd();
  const e = s.etcd;
  // The one quorum rule's verdict in words: "cannot see" is never "no quorum" (DESIGN.md).
  const QUORUM_WORDS = { quorate: '', lost: ' — QUORUM LOST (`quorum-keeper recover --plan` says what comes back by itself and what a restore would cost)', unknown: ' — CANNOT SEE whether etcd has quorum (check Quorum Keeper\'s access: the SSM agents, its etcd client certificate); do not restore on this' } as const;
  const backup = s.backup === 'unknown' ? 'unknown (no backup bucket given)' : s.backup ? `${age(s.backup.ageSec)} old (${s.backup.key})` : 'none';
  const certs = s.certificates.earliest ? certificateLine(s.certificates.earliest) : 'unknown';
  return [
    `cluster ${s.cluster}: ${s.healthy ? 'HEALTHY' : 'DEGRADED'}${QUORUM_WORDS[e.state]} — etcd leader ${e.leader ?? 'none'}, ${e.healthyVoters}/${e.voters} voters healthy (quorum ${e.quorum}, margin ${e.quorumMargin}), cluster version ${e.clusterVersion ?? 'unknown'}; newest backup ${backup}; certificates: ${certs}`,
    '',
    line(header),
    ...rows.map(line),
    ...(s.problems.length ? ['', 'problems:', ...s.problems.map((p) => `  - ${p}`)] : []),
  ].join('\n');
}

/** The earliest-expiring certificate, for the verdict line: `earliest expires in 364 d (etcd-b peer)`. */
function certificateLine(c: CertificateHealth): string {
  const who = `${c.member} ${c.kind}`;
  if (c.daysLeft < 0) return `${who} EXPIRED ${Math.ceil(-c.daysLeft)} d ago (${c.notAfter})`;
  return `earliest expires in ${c.daysLeft >= 1 ? `${Math.floor(c.daysLeft)} d` : 'less than a day'} (${who})`;
}
