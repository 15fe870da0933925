/**
 * `quorum-keeper recover --cluster C [--plan] [--yes]`: the quorum-loss recovery the reconciler
 * makes for a cluster that opted in (lib/flows/recover), decided now by the operator (no wait):
 * `--plan` shows each slot's chance, the verdict, the copy it would restore and the revisions
 * lost, and changes nothing; without it, after confirmation, it starts members on their own data,
 * restores from the best surviving copy, or finishes an interrupted restore.
 * Exit 0 done (or nothing to do), 3 refused (cannot see / stuck), 4 declined.
 */
import { DEFAULT_RECOVERY, describeSource, type RecoveryVerdict, type SlotChance } from '../../lib/domain/recovery';
import { contextOf, observeCluster } from '../../lib/observe/observe';
import { readRecovery, recoverCluster, startOnOwnData } from '../../lib/flows/recover';
import { hostRunOpts } from '../../lib/flows/deps';
import { clusterArg, type CliIo, confirm, type Values } from '../args';
import { withContext } from '../context';

function render(cluster: string, verdict: RecoveryVerdict, chances: readonly SlotChance[], highest: number | null): string {
  const lines = [`recovery of ${cluster}: ${verdict.kind.toUpperCase()}`, `  ${verdict.why}`];
  for (const c of chances) lines.push(`  ${c.member.padEnd(12)} ${c.kind.padEnd(9)} ${'revision' in c && c.revision !== null ? `revision ${c.revision}; ` : ''}${c.why}`);
  const r = verdict.kind === 'restore' ? verdict : verdict.kind === 'wait' ? verdict.due : undefined;
  if (r) {
    lines.push(`  copy:            ${describeSource(r.source)}`, `  because:         ${r.chosenBecause}`,
      `  revisions lost:  ${r.revisionsLost} (highest seen ${r.highest})`, '  how:             the restore flow (preflight, cluster lock, journal, revision bump); every member\'s current data kept aside');
  }
  if (verdict.kind === 'start') lines.push(`  would start:     ${verdict.members.map((m) => `${m.member} on ${m.instanceId}`).join(', ')} (their own data: nothing discarded)`);
  if (verdict.kind === 'unfinished') lines.push(`  would finish:    restore ${verdict.token} from ${verdict.snapshotKey}`);
  if (highest !== null && !r) lines.push(`  highest revision seen: ${highest}`);
  return lines.join('\n');
}

export async function recover(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  return withContext(v, io, { bucket: 'required', reconciler: true }, async ({ deps, store, workDir }) => {
    const settings = { ...DEFAULT_RECOVERY, mode: 'automatic' as const, waitSec: 0 };
    const journal = deps.restore.journal;
    const view = await observeCluster(deps.plan.observe, cluster, { etcd: {}, claims: true, volumes: true, records: true, backups: store }, contextOf(deps.plan));
    const read = await readRecovery({ ...deps.restore, ...(journal ? { journal } : {}) }, view, { lostSince: null, highestSeen: null, startedAt: {} }, settings, store);
    const { verdict } = read;
    if (v.json) io.out(JSON.stringify({ cluster, verdict, chances: read.chances, highestSeen: read.highestSeen }, null, 2));
    else io.err(render(cluster, verdict, read.chances, read.highestSeen));
    if (v.plan) return 0;
    switch (verdict.kind) {
      case 'none': case 'wait': return 0;
      case 'cannot-see': case 'stuck': return 3;
      case 'start': {
        if (!(await confirm(v, io, `Start etcd on ${verdict.members.map((m) => m.member).join(', ')} on their own data.`, cluster))) return 4;
        for (const m of verdict.members) io.err((await startOnOwnData(deps.restore, hostRunOpts(deps.restore, 120), m.member, m.instanceId)).detail);
        return 0;
      }
      case 'restore': case 'unfinished': {
        const what = verdict.kind === 'restore' ? `Restore ${cluster} from ${describeSource(verdict.source)}: ${verdict.revisionsLost} revisions lost.` : `Finish restore ${verdict.token}.`;
        if (!(await confirm(v, io, what, cluster))) return 4;
        const out = await recoverCluster({ ...deps.backup, ...deps.restore, alerter: deps.backup.alerter }, cluster, verdict, { ...deps.backupSettings(store), workDir },
          read.clientUrls[verdict.kind === 'restore' && verdict.source.kind === 'member' ? verdict.source.member : '']);
        io.out(v.json ? JSON.stringify(out, null, 2) : `${out.result === 'restored' ? `restored from ${out.snapshotKey} (token ${out.token})` : `RECOVERY FAILED: ${out.failure ?? ''}`}`);
        return out.result === 'restored' ? 0 : 1;
      }
    }
  });
}
