/**
 * Disaster-recovery arithmetic. Pure: no AWS, no I/O.
 */
import type { HostReport } from './view';

/**
 * The margin added to every restore's revision bump. etcd's disaster-recovery guide bumps by
 * 1,000,000,000 (https://etcd.io/docs/v3.5/op-guide/recovery/, "Restoring a cluster": "--bump-revision
 * 1000000000 --mark-compacted"); revisions are int64, so a billion per restore is never short.
 */
export const REVISION_BUMP_MARGIN = 1_000_000_000;

/**
 * How far a restore raises the snapshot's revision, so that no watcher (kube-apiserver's caches,
 * controllers) sees revisions go backwards: beyond the highest revision anyone may have seen —
 * the members' own data set aside, the live answers before the restore — plus the margin (a
 * member whose data is gone may have been ahead of all of those).
 */
export function revisionBump(snapshotRevision: number, seen: ReadonlyArray<number | null>): number {
  const highest = Math.max(snapshotRevision, ...seen.filter((r): r is number => r !== null));
  return highest - snapshotRevision + REVISION_BUMP_MARGIN;
}

/**
 * Automatic quorum-loss recovery (issue 30), judged over the one view of the cluster.
 *
 * A cluster that lost quorum usually comes back by itself: a member whose etcd is down on its own
 * data (a reboot, a replacement that reattached its volume without quorum) only needs starting,
 * and that never hurts — so it is always the first answer. A restore discards writes, so it is
 * the answer only when fewer than a majority of slots can ever run their member on their own data
 * again (volume blank, gone, or etcd refusing to start on it), no launch still under way could
 * change that, and this has lasted the configured wait. Then the best surviving copy wins: the
 * highest revision among the members still running (read without a leader) and the newest
 * verified backup; on a tie the survivor (it holds writes the backup's timestamp cannot show).
 */
export type RecoveryMode = 'manual' | 'automatic';

export interface RecoverySettings {
  mode: RecoveryMode;
  /** How long quorum must have been lost, with no way back by itself, before a restore. */
  waitSec: number;
  /** How long after a start on its own data a member that still does not run counts as refused. */
  startGraceSec: number;
}

export const DEFAULT_RECOVERY: RecoverySettings = { mode: 'manual', waitSec: 600, startGraceSec: 120 };

/** What one slot can do for quorum now. */
export type SlotChance =
  /** Its member runs (answers, without a leader): a survivor and a candidate copy. */
  | { member: string; kind: 'running'; instanceId: string; revision: number | null; why: string }
  /** Its master is in, its volume holds the member's data, etcd is down: starting it brings the member back. */
  | { member: string; kind: 'own-data'; instanceId: string; revision: number | null; why: string }
  /** It cannot run its member on its own data: volume blank or gone, or etcd refused to start on it. */
  | { member: string; kind: 'no-data'; instanceId: string | null; why: string }
  /** A launch or termination is under way: its replacement may yet reattach the volume. */
  | { member: string; kind: 'underway'; why: string };

/** What a slot's master says of its member (the host's own word), when asked. */
/** What a slot's master says of its etcd and data (the view's `hosts` part). */
export type HostWord = Pick<HostReport, 'running' | 'hasData' | 'revision'>;

export interface ChanceInput {
  slots: ReadonlyArray<{ member: string; instanceId: string | null; instances: ReadonlyArray<{ instanceId: string; lifecycleState: string }> }>;
  /** The revision each slot's member answered with (by slot), when it answered. */
  answered: Readonly<Record<string, number | null>>;
  /** Slots with a volume tagged for them. */
  volumes: ReadonlySet<string>;
  /** Slots awaiting disaster recovery and whether their replacement found data on the volume. */
  awaitingDr: Readonly<Record<string, { hasData: boolean }>>;
  /** What each asked master said (by slot). */
  hosts: Readonly<Record<string, HostWord | undefined>>;
  /** When a start on own data was first tried on an instance (by instance ID), remembered between runs. */
  startedAt: Readonly<Record<string, number>>;
  now: number;
}

/** Each slot's chance to run its member, from the view and the hosts' word. */
export function slotChances(c: ChanceInput, s: Pick<RecoverySettings, 'startGraceSec'> = DEFAULT_RECOVERY): SlotChance[] {
  return c.slots.map((slot): SlotChance => {
    const { member } = slot;
    const moving = slot.instances.find((i) => i.lifecycleState.startsWith('Pending') || /^Terminating(:Wait)?$/.test(i.lifecycleState));
    if (member in c.answered) return { member, kind: 'running', instanceId: slot.instanceId ?? moving?.instanceId ?? '', revision: c.answered[member] ?? null, why: 'its member answers' };
    if (moving) return { member, kind: 'underway', why: `${moving.instanceId} is ${moving.lifecycleState}` };
    if (!slot.instanceId) return { member, kind: 'underway', why: 'no InService master (its group launches one)' };
    const id = slot.instanceId;
    if (!c.volumes.has(member)) return { member, kind: 'no-data', instanceId: id, why: 'no etcd volume is tagged for it' };
    const dr = c.awaitingDr[member];
    const host = c.hosts[member];
    if (dr && !dr.hasData) return { member, kind: 'no-data', instanceId: id, why: 'its replacement found the volume blank (awaiting disaster recovery)' };
    if (host && !host.hasData) return { member, kind: 'no-data', instanceId: id, why: 'no etcd data on its volume' };
    if (host?.running) return { member, kind: 'running', instanceId: id, revision: host.revision, why: 'etcd runs there (it did not answer in time)' };
    const tried = c.startedAt[id];
    if (tried !== undefined && c.now - tried >= s.startGraceSec * 1000) {
      return { member, kind: 'no-data', instanceId: id, why: `etcd did not stay up on its data ${Math.round((c.now - tried) / 1000)} s after a start` };
    }
    return { member, kind: 'own-data', instanceId: id, revision: host?.revision ?? null, why: host ? 'its data is on the volume, etcd is down' : 'etcd is down; its master was not asked' };
  });
}

export type RecoverySource =
  | { kind: 'member'; member: string; instanceId: string; revision: number }
  | { kind: 'backup'; key: string; revision: number; takenAt: number };

/** Restore from `source`: automatically only when the cluster opted in (`mode`). */
export interface RestoreVerdict {
  kind: 'restore';
  mode: RecoveryMode;
  source: RecoverySource;
  why: string;
  chosenBecause: string;
  /** The highest revision seen anywhere (memory, survivors, the copy). */
  highest: number;
  /** What the restore discards at the least: `highest` minus the copy's revision. */
  revisionsLost: number;
  lostForSec: number;
}

export type RecoveryVerdict =
  | { kind: 'none'; why: string }
  /** Quorum Keeper cannot tell whether quorum is lost: never a restore. */
  | { kind: 'cannot-see'; why: string }
  /** Start these members on their own data: nothing is discarded. */
  | { kind: 'start'; members: Array<Extract<SlotChance, { kind: 'own-data' }>>; why: string }
  /** Nothing to do yet; `due`: the restore that follows once the wait is over. */
  | { kind: 'wait'; why: string; due?: RestoreVerdict }
  | RestoreVerdict
  /** Quorum cannot come back and there is no copy to restore from. */
  | { kind: 'stuck'; why: string }
  /** A restore was interrupted (its journal is open): it is finished (same snapshot, same token), nothing else is judged. */
  | { kind: 'unfinished'; mode: RecoveryMode; token: string; snapshotKey: string; why: string };

export interface RecoveryInput {
  now: number;
  quorum: { state: 'quorate' | 'lost' | 'unknown'; why: string };
  chances: readonly SlotChance[];
  /** When quorum was first seen lost (remembered between runs); null: now. */
  lostSince: number | null;
  /** The newest verified backup with its revision (null: none, or its metadata unreadable). */
  newestBackup: { key: string; revision: number; takenAt: number } | null;
  /** The highest revision Quorum Keeper has seen this cluster reach (remembered between runs). */
  highestSeen: number | null;
  settings: RecoverySettings;
  /** An interrupted restore's journal. */
  unfinished?: { token: string; snapshotKey: string } | null;
}

const majority = (n: number) => Math.floor(n / 2) + 1;

export function judgeRecovery(i: RecoveryInput): RecoveryVerdict {
  // Half-restored members must never be started on their old data, nor a second restore begun.
  if (i.unfinished) {
    return { kind: 'unfinished', mode: i.settings.mode, ...i.unfinished, why: `restore ${i.unfinished.token} from ${i.unfinished.snapshotKey} was interrupted: it is finished first (or rolled back), nothing else is done` };
  }
  if (i.quorum.state === 'quorate') return { kind: 'none', why: i.quorum.why };
  if (i.quorum.state === 'unknown') return { kind: 'cannot-see', why: `${i.quorum.why}: Quorum Keeper cannot tell whether quorum is lost, so it never restores` };
  const n = i.chances.length;
  const need = majority(n);
  const of = <K extends SlotChance['kind']>(k: K) => i.chances.filter((c): c is Extract<SlotChance, { kind: K }> => c.kind === k);
  const running = of('running');
  const ownData = of('own-data');
  const underway = of('underway');
  const list = (cs: readonly SlotChance[]) => cs.map((c) => `${c.member} (${c.why})`).join(', ');
  if (ownData.length) {
    return { kind: 'start', members: ownData, why: `quorum lost; ${ownData.length} member(s) can run again on their own data: ${list(ownData)}` };
  }
  if (running.length >= need) return { kind: 'wait', why: `quorum lost, but ${running.length}/${n} members run: a majority, so it comes back by itself once they reach each other` };
  if (underway.length && running.length + underway.length >= need) {
    return { kind: 'wait', why: `quorum lost; ${list(underway)}: a replacement that reattaches its volume may bring quorum back, so no restore while it is under way` };
  }
  const lostForSec = Math.max(0, Math.round((i.now - (i.lostSince ?? i.now)) / 1000));
  const noData = of('no-data');
  const why = `quorum lost for ${lostForSec} s and cannot come back by itself: ${running.length}/${n} members run (${need} needed)${noData.length ? `; ${list(noData)}` : ''}`;
  const survivors = running.filter((c): c is typeof c & { revision: number } => c.revision !== null).sort((a, b) => b.revision - a.revision);
  const best = survivors[0];
  const backup = i.newestBackup;
  let source: RecoverySource;
  let chosenBecause: string;
  if (best && (!backup || best.revision >= backup.revision)) {
    source = { kind: 'member', member: best.member, instanceId: best.instanceId, revision: best.revision };
    chosenBecause = `the surviving member ${best.member} holds revision ${best.revision}${backup ? `, ${best.revision === backup.revision ? 'as much as' : 'more than'} the newest backup (${backup.revision})` : '; there is no backup'}`;
  } else if (backup) {
    source = { kind: 'backup', ...backup };
    chosenBecause = best ? `the newest backup (revision ${backup.revision}) is ahead of every surviving member (best: ${best.member} at ${best.revision})` : 'no member survives: the newest verified backup';
  } else {
    return { kind: 'stuck', why: `${why}; no surviving member and no verified backup to restore from` };
  }
  const highest = Math.max(source.revision, i.highestSeen ?? 0, ...survivors.map((s) => s.revision));
  const verdict: RestoreVerdict = { kind: 'restore', mode: i.settings.mode, source, why, chosenBecause, highest, revisionsLost: highest - source.revision, lostForSec };
  if (lostForSec < i.settings.waitSec) return { kind: 'wait', why: `${why}; a restore from ${describeSource(source)} is due after ${i.settings.waitSec} s (${i.settings.waitSec - lostForSec} s left)`, due: verdict };
  return verdict;
}

export function describeSource(s: RecoverySource): string {
  return s.kind === 'member' ? `a copy of ${s.member}'s data (${s.instanceId}, revision ${s.revision})` : `backup ${s.key} (revision ${s.revision})`;
}
