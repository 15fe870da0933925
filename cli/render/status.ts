/** `quorum-keeper status` as text: an aligned table with a verdict line and the problems. */
import type { ClusterStatus } from '../../lib/flows/status';
import { age } from './format';

/** The status as an aligned text table with a verdict line and the problems. */
export function renderStatus(s: ClusterStatus): string {
  const header = ['MEMBER', 'AZ', 'ASG', 'INSTANCE', 'LIFECYCLE', 'VOLUME', 'ATTACHED', 'ETCD', 'RAFT LAG', 'LB'];
  const rows = s.members.map((m) => [
    m.member, m.az ?? '-', m.asg, m.instanceId ?? '-', m.lifecycleState ?? '-', m.volumeId ?? '-',
    m.volumeAttachedTo ? (m.volumeAttachedTo === m.instanceId ? 'yes' : m.volumeAttachedTo) : (m.volumeState ?? '-'),
    m.etcd, m.raftLag === null ? '-' : String(m.raftLag), m.lb,
  ]);
  const width = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd();
  const e = s.etcd;
  const backup = s.backup === 'unknown' ? 'unknown (no backup bucket given)' : s.backup ? `${age(s.backup.ageSec)} old (${s.backup.key})` : 'none';
  return [
    `cluster ${s.cluster}: ${s.healthy ? 'HEALTHY' : 'DEGRADED'} — etcd leader ${e.leader ?? 'none'}, ${e.healthyVoters}/${e.voters} voters healthy (quorum ${e.quorum}, margin ${e.quorumMargin}); newest backup ${backup}`,
    '',
    line(header),
    ...rows.map(line),
    ...(s.problems.length ? ['', 'problems:', ...s.problems.map((p) => `  - ${p}`)] : []),
  ].join('\n');
}
