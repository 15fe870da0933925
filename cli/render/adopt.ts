/** `quorum-keeper adopt`: the plan (a table), the refusals, the outcome, as text and as JSON. */
import type { AdoptionPlan, AdoptOutcome, Refusal } from '../../lib/flows/adopt';

const HEAD = ['SLOT', 'INSTANCE', 'VOLUME', 'ETCD MEMBER', 'MEMBER ID', 'PEER URL', 'ACTION'];

/** What adopt would do: one row per slot, then the formation record. */
export function renderAdoptPlan(p: AdoptionPlan): string {
  const rows = p.slots.map((s) => [
    s.slot, s.instanceId ?? '-', s.volumeId ?? '-', s.etcdName ?? '-', s.memberId ?? '-', s.peerUrl ?? '-',
    s.action === 'adopt' ? `adopt (${s.writes.join(', ')})` : s.action,
  ]);
  const width = HEAD.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(width[i]!)).join('  ').trimEnd();
  return [
    `ADOPTION PLAN for cluster ${p.cluster}${p.clusterId ? ` (etcd cluster ID ${p.clusterId})` : ''}`,
    '',
    line(HEAD),
    ...rows.map(line),
    ...(p.refusals.length ? [] : [
      '',
      `formation: ${p.formation === 'already' ? 'recorded already' : 'record the cluster as formed (adopted): it is never seeded again'}`,
      '  adopt writes, per slot: the marker on the volume (cluster, member, volume ID), the member ID in it,',
      '  the slot → member ID record in the state table, and the boot guard on etcd\'s unit (it starts only',
      '  on its verified volume). etcd is not stopped, restarted or reconfigured.',
    ]),
  ].join('\n');
}

export function renderRefusals(cluster: string, refusals: readonly Refusal[]): string {
  return [
    `refused: cluster ${cluster} cannot be adopted (${refusals.length} reason${refusals.length === 1 ? '' : 's'}):`,
    ...refusals.flatMap((r) => [`  - ${r.slot ? `${r.slot}: ` : ''}${r.reason}`, `    what to do: ${r.action}`]),
    'Nothing was changed.',
  ].join('\n');
}

export function renderAdopted(cluster: string, o: AdoptOutcome): string {
  if (o.result === 'unchanged') return `${cluster} is adopted already: nothing was changed`;
  return [
    `adopted ${cluster} in ${(o.ms / 1000).toFixed(1)} s (etcd cluster ID ${o.plan.clusterId ?? '?'}):`,
    ...o.wrote.map((w) => `  ${w}`),
    `  From now on a replaced master comes back as its slot's member. Check with: quorum-keeper doctor --cluster ${cluster}`,
  ].join('\n');
}

export function adoptJson(o: { cluster: string; dryRun: boolean; result: 'planned' | 'refused' | 'aborted' | AdoptOutcome['result']; plan: AdoptionPlan | null; refusals?: readonly Refusal[]; wrote?: readonly string[] }): string {
  return JSON.stringify({ ...o, refusals: o.refusals ?? o.plan?.refusals ?? [], wrote: o.wrote ?? [] });
}
