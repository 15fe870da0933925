/**
 * What the reconciler should do next for one cluster, from one read of the world. Pure: no
 * AWS, no I/O. Events get lost, duplicated and reordered; this compares the desired shape
 * (every member slot has one InService master with its volume attached and a healthy etcd
 * member; no etcd member without a slot; a fresh backup) with what is there and proposes the
 * next SAFE steps only:
 *
 * - an instance waiting in `Pending:Wait` longer than the grace period while no flow drives
 *   its slot → re-drive the replacement flow (a lost launch event);
 * - an InService master that is not whole (its etcd member missing or not following the
 *   leader, its volume not attached to it, not healthy in the load balancer) for longer than
 *   its own grace, while the cluster has a leader → run the replacement flow on it again
 *   (it mounts, fixes membership, starts etcd, registers; no hook to complete);
 * - a slot is its member by identity (recorded member ID, name, or its master's peer URL: see
 *   identity.ts), so a member named differently from its slot's tag is no stray;
 * - an ASG tagged for the cluster whose member tag is missing or invalid, or two ASGs with the
 *   same member tag → alert (never guessed);
 * - an etcd member with no slot (stray) → never one that answers and follows the leader (an
 *   alert names it); remove it only after it has not answered for its whole grace period, only
 *   while the cluster has a leader, only if quorum still holds without it, and never below the
 *   number of slots; else an alert;
 * - a master in `Terminating:Wait` that no flow is driving (a retirement holding its hook until
 *   leaving is safe, or a lost terminate event) → heartbeat the hook and run the retirement;
 * - a member volume still attached to a terminated instance → detach it;
 *   an unattached member volume whose slot has no instance → alert (never touched);
 * - the newest backup older than the objective (or none) → take a backup, and alert;
 * - quorum lost (the recovery verdict, lib/domain/recovery.ts) → start members whose etcd is down
 *   on their own data; a restore only for a cluster that opted in (else one alert that says
 *   what `quorum-keeper recover` would do); an interrupted restore is finished first.
 */
import type { Claim } from './identity';
import { quorumOf } from './membership';
import { describeSource, type RecoveryVerdict, type RestoreVerdict } from './recovery';

export interface WorldSlot {
  member: string;
  asg: string;
  instances: ReadonlyArray<{ instanceId: string; lifecycleState: string }>;
  /** A flow holds this slot's lock (a replacement is making progress). */
  busy?: boolean;
  /** Instances in Terminating:Wait whose retirement a flow is running now (their instance lock is held). */
  retiringBusy?: readonly string[];
  /** The etcd member this slot is (absent: none found, or identity not read: then by name). */
  claim?: Claim;
  /**
   * The slot's InService master (absent: none) and what keeps the slot from being whole, by the
   * one rule every flow shares (`slotGaps`, lib/domain/judge.ts; empty: whole).
   */
  master?: { instanceId: string; gaps: readonly string[] };
}

export interface WorldVolume {
  member: string;
  volumeId: string;
  /** EC2 volume state (`available`, `in-use`, …). */
  state: string;
  attachedTo: string | null;
  /** EC2 state of the instance it is attached to (`running`, `terminated`, …), if attached. */
  attachedInstanceState: string | null;
}

export interface WorldEtcd {
  /** null when no member answered (then nothing is decided about membership). */
  members: ReadonlyArray<{ id: string; name: string; isLearner: boolean }> | null;
  leader: string | null;
  /** IDs of voters that follow the leader. */
  healthyIds: readonly string[];
}

export interface ReconcileWorld {
  cluster: string;
  now: number;
  slots: readonly WorldSlot[];
  volumes: readonly WorldVolume[];
  etcd: WorldEtcd;
  /** When each `Pending:Wait` instance / stray member was first seen (remembered between runs). */
  firstSeen: Readonly<Record<string, number>>;
  /** A flow holds the cluster lock (a membership change is in progress): strays wait. */
  lockHeld: boolean;
  /** Age of the newest good backup in seconds; null when there is none; 'unknown' when unlisted. */
  backupAgeSec: number | null | 'unknown';
  /** ASGs tagged for the cluster whose member tag is missing or invalid (not slots). */
  badGroups?: ReadonlyArray<{ asg: string; memberTag: string | undefined }>;
  /** The quorum-loss verdict (absent: not judged — no recovery settings); with what acting on it needs. */
  recovery?: {
    verdict: RecoveryVerdict;
    /** The client URL each running member answered on (by slot): where a survivor's copy is taken. */
    clientUrls: Readonly<Record<string, string>>;
    /** The highest revision seen, this run included (remembered). */
    highestSeen: number | null;
  };
}

export interface ReconcileSettings {
  pendingGraceSec: number;
  /** How long an InService master may stay not whole before it is repaired (rides out elections, LB checks). */
  repairGraceSec: number;
  strayGraceSec: number;
  backupStaleAfterSec: number;
}

export const DEFAULT_RECONCILE: ReconcileSettings = { pendingGraceSec: 300, repairGraceSec: 300, strayGraceSec: 600, backupStaleAfterSec: 3600 };

export type ReconcileAction =
  | { kind: 'redrive-replacement'; member: string; asg: string; instanceId: string; reason: string }
  | { kind: 'repair-master'; member: string; asg: string; instanceId: string; reason: string }
  /** A master in Terminating:Wait with no flow on it: heartbeat its hook and run the retirement (it leaves when safe). */
  | { kind: 'drive-retirement'; member: string; asg: string; instanceId: string; reason: string }
  | { kind: 'remove-stray'; memberId: string; name: string; reason: string }
  | { kind: 'detach-volume'; member: string; volumeId: string; instanceId: string; reason: string }
  | { kind: 'backup'; reason: string }
  /** Quorum lost: start this member's etcd on its own data (nothing discarded). */
  | { kind: 'start-member'; member: string; instanceId: string; reason: string }
  /** Quorum lost for good in a cluster that opted in: restore from the verdict's copy (or finish an interrupted restore). */
  | { kind: 'recover'; verdict: RestoreVerdict | Extract<RecoveryVerdict, { kind: 'unfinished' }>; clientUrl?: string; reason: string }
  /** `key` names what the alert is about (stable between runs: alerts are de-duplicated on it). */
  | { kind: 'alert'; code: 'orphan-volume' | 'stray-unsafe' | 'stray-live' | 'backup-stale' | 'slot-empty' | 'member-tag' | 'quorum-lost'; key: string; summary: string; action: string };

export interface ReconcilePlan {
  actions: ReconcileAction[];
  /** Things seen that need no action yet (e.g. within a grace period), for the summary line. */
  notes: string[];
  /** Everything that differs from the desired shape (the drift metric). */
  drift: number;
  /** Keys to remember as first seen now (`Pending:Wait` instances, masters awaiting repair, strays; SEEN_KINDS). */
  seen: Record<string, number>;
}

/**
 * What the reconciler counts a grace from (its memory's keys): a `Pending:Wait` instance, a
 * master with gaps awaiting repair, a stray member, quorum lost (`lost#quorum`), a start on own
 * data (`start#<instance>`) — and one value that is no time: the highest revision seen
 * (`revision#high`). The memory keeps exactly these: one list, so
 * a grace added here is remembered between runs (a repair's was once dropped on every write, and
 * every run started its grace again).
 */
export const SEEN_KINDS = ['pending', 'repair', 'stray', 'lost', 'start', 'revision'] as const;
export type SeenKind = (typeof SEEN_KINDS)[number];
const SEEN_KEY = new RegExp(`^(${SEEN_KINDS.join('|')})#[A-Za-z0-9-]{1,64}$`);
export const isSeenKey = (key: string): boolean => SEEN_KEY.test(key);
export const seenKey = (kind: SeenKind, id: string): string => `${kind}#${id}`;

export function planReconcile(w: ReconcileWorld, s: ReconcileSettings = DEFAULT_RECONCILE): ReconcilePlan {
  const actions: ReconcileAction[] = [];
  const notes: string[] = [];
  const seen: Record<string, number> = {};
  const since = (key: string) => {
    const t = w.firstSeen[key] ?? w.now;
    seen[key] = t;
    return Math.round((w.now - t) / 1000);
  };

  // 1. Slots: a master waiting for a launch event that never came.
  for (const slot of w.slots) {
    const waiting = slot.instances.filter((i) => i.lifecycleState === 'Pending:Wait');
    for (const i of waiting) {
      const age = since(seenKey('pending', i.instanceId));
      if (slot.busy) notes.push(`${slot.member}: ${i.instanceId} in Pending:Wait for ${age} s; a flow is driving this slot`);
      else if (age < s.pendingGraceSec) notes.push(`${slot.member}: ${i.instanceId} in Pending:Wait for ${age} s (grace ${s.pendingGraceSec} s)`);
      else actions.push({ kind: 'redrive-replacement', member: slot.member, asg: slot.asg, instanceId: i.instanceId, reason: `in Pending:Wait for ${age} s with no flow making progress` });
    }
    // A retiring master whose hook no flow is keeping alive (held for safety, or its event lost):
    // no grace, the hook's heartbeat timeout is running; the instance lock keeps it to one flow.
    for (const i of slot.instances.filter((x) => x.lifecycleState === 'Terminating:Wait')) {
      if (slot.retiringBusy?.includes(i.instanceId)) notes.push(`${slot.member}: ${i.instanceId} is retiring; a flow is driving it`);
      else actions.push({ kind: 'drive-retirement', member: slot.member, asg: slot.asg, instanceId: i.instanceId, reason: 'in Terminating:Wait with no flow keeping its hook alive' });
    }
    const gaps = slot.master && waiting.length === 0 ? masterGaps(w, slot.master) : [];
    if (slot.master && gaps.length) {
      const age = since(seenKey('repair', slot.master.instanceId));
      const what = gaps.join('; ');
      if (slot.busy) notes.push(`${what} for ${age} s; a flow is driving this slot`);
      else if (age < s.repairGraceSec) notes.push(`${what} for ${age} s (grace ${s.repairGraceSec} s)`);
      else actions.push({ kind: 'repair-master', member: slot.member, asg: slot.asg, instanceId: slot.master.instanceId, reason: `${gaps.join('; ')} for ${age} s` });
    }
    if (slot.instances.length === 0) {
      actions.push({ kind: 'alert', code: 'slot-empty', key: slot.asg, summary: `${slot.member}: ${slot.asg} has no instance`, action: `Check the ASG's activity history (capacity, launch template, AZ capacity).` });
    }
  }

  // Master ASGs that are no slot: never guessed, the operator is told.
  for (const g of w.badGroups ?? []) {
    actions.push({
      kind: 'alert', code: 'member-tag', key: g.asg, summary: `${g.asg} is tagged for ${w.cluster} but its member tag ${g.memberTag === undefined ? 'is missing' : `(${JSON.stringify(g.memberTag.slice(0, 80))}) is not a valid member name`}: Quorum Keeper does not manage it`,
      action: 'Tag the ASG with its etcd member\'s slot name (lower-case letters, digits, dashes), or remove the cluster tag if it is no master group.',
    });
  }
  const dup = w.slots.filter((x, i) => w.slots.findIndex((y) => y.member === x.member) !== i);
  for (const d of dup) {
    actions.push({
      kind: 'alert', code: 'member-tag', key: d.asg, summary: `${d.asg} and ${w.slots.find((y) => y.member === d.member)!.asg} are both tagged as member ${d.member} of ${w.cluster}`,
      action: 'Each master slot has its own member tag: re-tag one of the ASGs.',
    });
  }

  // 2. Stray etcd members: in the member list, but no slot claims them.
  const members = w.etcd.members;
  if (members) {
    const claimed = new Set(w.slots.map((x) => slotMemberId(w, x)).filter((id): id is string => id !== undefined));
    for (const m of members.filter((x) => !claimed.has(x.id))) {
      const label = strayLabel(m);
      // Never remove a voter that answers and follows the leader (DESIGN.md): a member added by
      // hand, or a slot whose member tag differs from its etcd name — removing those shrinks a
      // healthy cluster. Only a member that has not answered for the whole grace may go; its
      // grace starts again whenever it answers (the key is not remembered while it does).
      if (w.etcd.healthyIds.includes(m.id)) {
        actions.push({
          kind: 'alert', code: 'stray-live', key: m.id, summary: `etcd member ${label} (${m.id}) answers and follows the leader, but no slot claims it: not removed`,
          action: 'A voter added by hand, or one whose slot could not be told (its name is not a slot\'s member tag and no slot\'s master advertises its peer URL). Remove it by hand (`etcdctl member remove`) if it is truly unwanted.',
        });
        continue;
      }
      const age = since(seenKey('stray', m.id));
      if (age < s.strayGraceSec) {
        notes.push(`etcd member ${label} has no slot and has not answered for ${age} s (grace ${s.strayGraceSec} s)`);
        continue;
      }
      if (w.lockHeld) {
        // A replacement adds its learner (no name yet) under this lock: never judge it mid-change.
        notes.push(`etcd member ${label} has no slot for ${age} s; a membership change holds the lock, decided next run`);
        continue;
      }
      const safe = strayRemoval(w.etcd, m, w.slots.length);
      actions.push(safe.ok
        ? { kind: 'remove-stray', memberId: m.id, name: label, reason: `no slot for ${age} s; ${safe.reason}` }
        : { kind: 'alert', code: 'stray-unsafe', key: m.id, summary: `etcd member ${label} has no slot, but ${safe.why}`, action: safe.action });
    }
  }

  // 3. Volumes.
  for (const v of w.volumes) {
    const slot = w.slots.find((x) => x.member === v.member);
    if (v.attachedTo && v.attachedInstanceState === 'terminated') {
      actions.push({ kind: 'detach-volume', member: v.member, volumeId: v.volumeId, instanceId: v.attachedTo, reason: `still attached to terminated ${v.attachedTo}` });
    } else if (!v.attachedTo && v.state === 'available' && (!slot || slot.instances.length === 0)) {
      actions.push({
        kind: 'alert', code: 'orphan-volume', key: v.volumeId, summary: `etcd volume ${v.volumeId} of ${v.member} is attached to nothing and its slot has no instance`,
        action: slot ? `Check ${slot.asg}: when it launches a master, the replacement flow attaches this volume.` : `No ASG is tagged for member ${v.member}: re-create its slot or retire the member; the volume is never deleted automatically.`,
      });
    }
  }

  // 4. Quorum loss.
  if (w.recovery) planRecovery(w, w.recovery, actions, notes, seen);

  // 5. Backups.
  if (w.backupAgeSec !== 'unknown' && (w.backupAgeSec === null || w.backupAgeSec > s.backupStaleAfterSec)) {
    const why = w.backupAgeSec === null ? 'there is no backup' : `the newest backup is ${Math.round(w.backupAgeSec / 60)} min old (objective ${Math.round(s.backupStaleAfterSec / 60)} min)`;
    actions.push({ kind: 'backup', reason: why });
    actions.push({ kind: 'alert', code: 'backup-stale', key: 'newest-backup', summary: `etcd backups of ${w.cluster} are stale: ${why}`, action: 'The reconciler starts a backup now; look for backup failure alerts if this repeats.' });
  }
  return { actions, notes, drift: actions.filter((a) => a.kind !== 'alert' || a.code !== 'backup-stale').length, seen };
}

/** The recovery verdict as reconciler actions; what it remembers (since when lost, starts tried, the highest revision). */
function planRecovery(w: ReconcileWorld, r: NonNullable<ReconcileWorld['recovery']>, actions: ReconcileAction[], notes: string[], seen: Record<string, number>): void {
  if (r.highestSeen) seen[seenKey('revision', 'high')] = r.highestSeen;
  const v = r.verdict;
  if (v.kind === 'none') return;
  if (v.kind === 'cannot-see') { notes.push(v.why); return; }
  seen[seenKey('lost', 'quorum')] = w.firstSeen[seenKey('lost', 'quorum')] ?? w.now;
  // A start tried on an instance is remembered while quorum stays lost: one that did not stay up counts as refused.
  for (const [k, t] of Object.entries(w.firstSeen)) if (k.startsWith('start#')) seen[k] = t;
  const manual = (what: string, action: string) => actions.push({ kind: 'alert', code: 'quorum-lost', key: 'recovery', summary: `${w.cluster} has lost quorum: ${what}`, action });
  switch (v.kind) {
    case 'start':
      for (const m of v.members) {
        seen[seenKey('start', m.instanceId)] = w.firstSeen[seenKey('start', m.instanceId)] ?? w.now;
        actions.push({ kind: 'start-member', member: m.member, instanceId: m.instanceId, reason: v.why });
      }
      return;
    case 'wait': notes.push(v.why); return;
    case 'stuck': manual(v.why, 'Bring back a master with its data, or put a verified backup in the bucket and run `quorum-keeper restore`.'); return;
    case 'unfinished':
      if (v.mode === 'automatic') actions.push({ kind: 'recover', verdict: v, reason: v.why });
      else manual(v.why, `Finish it: \`quorum-keeper restore --cluster ${w.cluster}\` (same snapshot, same token), or undo it: \`--rollback ${v.token}\`.`);
      return;
    case 'restore':
      if (v.mode === 'automatic') {
        actions.push({ kind: 'recover', verdict: v, ...(v.source.kind === 'member' && r.clientUrls[v.source.member] ? { clientUrl: r.clientUrls[v.source.member] } : {}), reason: `${v.why}; ${v.chosenBecause}` });
      } else {
        manual(`${v.why}. A restore from ${describeSource(v.source)} would lose ${v.revisionsLost} revisions (${v.chosenBecause}).`,
          `Recovery is manual for this cluster: review \`quorum-keeper recover --cluster ${w.cluster} --plan\`, then run \`quorum-keeper recover --cluster ${w.cluster}\`.`);
      }
  }
}

/**
 * What keeps an InService master's slot from being whole (the one rule's answer, read with the
 * world). Acted on only while the cluster has a leader: without one, repairs would be refused
 * anyway and the watchdog's alarms own the incident.
 */
function masterGaps(w: ReconcileWorld, m: NonNullable<WorldSlot['master']>): readonly string[] {
  if (w.etcd.members === null || w.etcd.leader === null) return [];
  return m.gaps;
}

/** The member ID a slot is: its claim, else (identity not read) the member named like its tag. */
function slotMemberId(w: ReconcileWorld, slot: WorldSlot): string | undefined {
  return slot.claim?.id ?? w.etcd.members?.find((x) => x.name === slot.member)?.id;
}

export function strayLabel(m: { id: string; name: string }): string {
  return m.name || `(unstarted ${m.id})`;
}

/**
 * Whether removing member `m` is safe now: the cluster has a leader that is not `m`, `m` does not
 * answer (a live voter is never removed), at least one voter per slot stays, and the voters that
 * follow the leader still make a quorum of the voters left without `m`. The reconciler
 * asks this when planning and again, under the cluster lock, right before removing.
 */
export function strayRemoval(etcd: WorldEtcd, m: { id: string; isLearner: boolean }, slots: number): { ok: true; reason: string } | { ok: false; why: string; action: string } {
  const voters = (etcd.members ?? []).filter((x) => !x.isLearner).length;
  const votersAfter = m.isLearner ? voters : voters - 1;
  const healthyAfter = etcd.healthyIds.filter((id) => id !== m.id).length;
  if (etcd.members === null || etcd.leader === null || etcd.leader === m.id) {
    return { ok: false, why: `the cluster ${etcd.leader === m.id ? 'is led by it' : 'has no leader'}`, action: 'Restore the cluster\'s health first (or move leadership away); the reconciler removes it afterwards.' };
  }
  if (etcd.healthyIds.includes(m.id)) {
    return { ok: false, why: 'it answers and follows the leader', action: 'A live voter is never removed automatically: tag its ASG with its name, or remove it by hand if it is truly unwanted.' };
  }
  if (!m.isLearner && votersAfter < slots) {
    return { ok: false, why: `removing it would leave ${votersAfter} voter(s) for ${slots} slots`, action: 'Check that every master ASG\'s member tag is its etcd member\'s name: members are never removed below the number of slots.' };
  }
  if (healthyAfter < quorumOf(votersAfter)) {
    return { ok: false, why: `removing it would leave ${healthyAfter}/${votersAfter} healthy voters (quorum ${quorumOf(votersAfter)})`, action: 'Bring the other members back first.' };
  }
  return { ok: true, reason: `${healthyAfter}/${votersAfter} healthy voters remain (quorum ${quorumOf(votersAfter)})` };
}

/** One line per action, for logs and `quorum-keeper plan`. */
export function describeAction(a: ReconcileAction): string {
  switch (a.kind) {
    case 'redrive-replacement': return `re-drive the replacement of ${a.member} on ${a.instanceId} (${a.reason})`;
    case 'repair-master': return `repair ${a.member} on ${a.instanceId} with the replacement flow (${a.reason})`;
    case 'drive-retirement': return `keep the terminate hook of ${a.member} on ${a.instanceId} alive and retire it once leaving is safe (${a.reason})`;
    case 'remove-stray': return `remove stray etcd member ${a.name} ${a.memberId} under the cluster lock (${a.reason})`;
    case 'detach-volume': return `detach ${a.volumeId} of ${a.member} from ${a.instanceId} (${a.reason})`;
    case 'backup': return `take a backup (${a.reason})`;
    case 'start-member': return `start etcd of ${a.member} on ${a.instanceId} on its own data (${a.reason})`;
    case 'recover': return a.verdict.kind === 'unfinished' ? `finish restore ${a.verdict.token} (${a.reason})` : `restore ${a.verdict.source.kind === 'member' ? `from a copy of ${a.verdict.source.member}` : `from ${a.verdict.source.key}`} (${a.reason})`;
    case 'alert': return `alert: ${a.summary} — ${a.action}`;
  }
}
