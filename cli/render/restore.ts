/** `quorum-keeper restore`: the plan shown before consent, the outcome as text and as JSON. */
import type { RestorePlan, RestoreSummary } from '../../lib/flows/restore';

/** What the restore will do, for the operator to read before typing the cluster name. */
export function renderRestorePlan(p: RestorePlan): string {
  const m = p.snapshot.meta;
  return [
    '',
    `RESTORE PLAN for cluster ${p.cluster}`,
    `  cluster now:  ${p.health}${p.quorum === 'quorate' ? '  ← STILL HAS QUORUM (--force)' : p.quorum === 'unknown' ? '  ← CANNOT SEE (--force)' : ''}`,
    ...(p.quorum !== 'lost' && p.liveRevision !== null && p.liveRevision > p.snapshot.meta.revision
      ? [`  WOULD LOSE:   at least ${p.liveRevision - p.snapshot.meta.revision} revisions written since the snapshot (live revision ${p.liveRevision})`] : []),
    ...(p.resuming ? [`  RESUMING:     a restore begun ${p.resuming.startedAt.toISOString()} with this snapshot and token was interrupted: this run finishes it`] : []),
    `  snapshot:     ${p.snapshot.key}`,
    `                taken ${m.takenAt.toISOString()} from ${m.member}; revision ${m.revision}; ${m.keys ?? '?'} keys; ${m.size} bytes (${m.compressor})`,
    ...p.warnings.map((w) => `  WARNING:      ${w}`),
    `  new token:    ${p.token}`,
    '  members:',
    ...p.members.map((x) => `    ${x.member.padEnd(10)} ${x.instanceId.padEnd(20)} ${x.peerUrl}`),
    '  steps, once you confirm:',
    ...p.steps.map((x) => `    ${x.step.padEnd(10)} ${x.action}`),
    '  Every member\'s etcd is stopped; its current data dir is moved aside (not deleted);',
    '  every write made after the snapshot is discarded.',
    '',
  ].join('\n');
}

export function restoreJson(s: RestoreSummary): string {
  const { snapshot } = s.plan;
  return JSON.stringify({ ...s, plan: { ...s.plan, snapshot: { key: snapshot.key, meta: { ...snapshot.meta, takenAt: snapshot.meta.takenAt.toISOString() } } } });
}

export function renderRestore(cluster: string, s: RestoreSummary): string {
  if (s.result === 'aborted') return 'aborted: nothing was changed';
  return [
    `restored ${cluster} from ${s.plan.snapshot.key} in ${(s.ms / 1000).toFixed(1)} s`,
    `  revision ${s.revision} (snapshot ${s.plan.snapshot.meta.revision}); ${s.keysAtSnapshotRevision} keys at the snapshot revision`,
    `  discardedAfterRevision: ${s.discardedAfterRevision ?? 'unknown (no member had readable data)'} — revisions newer than the snapshot that this restore set aside`,
    ...s.members.map((m) => `  ${m.member.padEnd(10)} ${m.instanceId.padEnd(20)} previous data ${m.asideDir ? `kept at ${m.asideDir} (revision ${m.previousRevision ?? '?'})` : 'none'}`),
    `  roll back with: quorum-keeper restore --cluster ${cluster} --rollback ${s.plan.token}`,
    '  Next: restart kube-apiserver on every master; old API server endpoints may linger in the `kubernetes` Endpoints until their leases expire.',
  ].join('\n');
}

export function rollbackJson(cluster: string, token: string, members: ReadonlyArray<{ member: string; instanceId: string }>): string {
  return JSON.stringify({ result: 'rolled-back', cluster, token, members });
}

export function renderRollback(cluster: string, members: ReadonlyArray<{ member: string }>): string {
  return `rolled back ${cluster}: ${members.map((m) => m.member).join(', ')} are running on their pre-restore data again`;
}
