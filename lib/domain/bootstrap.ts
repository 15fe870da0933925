/**
 * Whether a master that finds no etcd member answering may seed a new cluster. Pure: no AWS.
 *
 * Seeding is the one act that can lose a cluster's data outright: a new cluster seeded next to
 * data that still exists (on a volume, in a backup) forks history, and the old data is then
 * overwritten by whatever the new cluster writes. So a seed needs all of:
 *   - the cluster was never formed (no `formed#` record: bootstrap fenced it, or adopt wrote it);
 *   - every slot's master has mounted its volume and reported it blank (no etcd data, no
 *     recorded member ID), and the report is about the slot's volume as tagged now;
 *   - no backup exists for the cluster (the bucket was read, not assumed empty);
 * and then the conditional claim of the fence, which exactly one master wins.
 */

export interface SeedFacts {
  /** The slot asking, on its instance with the volume it mounted. */
  slot: string;
  instanceId: string;
  volumeId: string;
  /** Every slot of the cluster (member tags of its master ASGs). */
  slots: readonly string[];
  /** Each slot's tagged volume(s), as found now. */
  volumes: Readonly<Record<string, readonly string[]>>;
  /** What each slot's master reported when it found no member answering. */
  reports: ReadonlyArray<{ slot: string; volumeId: string; instanceId: string; blank: boolean }>;
  /** Whether a backup of the cluster exists; null: it could not be known (no bucket configured). */
  backupExists: boolean | null;
  /** The fence, if written. */
  formation: { state: 'seeding' | 'formed'; seed: string; how: 'bootstrap' | 'adopt' | 'observed'; volumeId?: string | null } | null;
}

export type SeedDecision =
  /** Claim the fence (or, this slot holding it already, go on seeding). */
  | { kind: 'seed'; resume: boolean; detail: string }
  /** Another slot seeds: wait for its member to answer, then join it. */
  | { kind: 'join'; detail: string }
  /** Not yet: some slot has not reported. */
  | { kind: 'wait'; detail: string }
  /** The cluster existed (formed, adopted): no member answering is a disaster, not a new cluster. */
  | { kind: 'formed'; detail: string }
  /** Never seed: data exists somewhere. `action` says what instead. */
  | { kind: 'refuse'; reason: string; action: string };

export function decideSeed(f: SeedFacts): SeedDecision {
  if (f.formation?.state === 'formed') {
    return { kind: 'formed', detail: `the cluster ${f.formation.how === 'adopt' ? 'was adopted' : f.formation.how === 'observed' ? 'was seen running' : 'was formed'} before: it is never seeded again` };
  }
  if (f.formation?.state === 'seeding') {
    if (f.formation.seed !== f.slot) return { kind: 'join', detail: `${f.formation.seed} seeds the cluster: waiting for it to answer, then joining` };
    // The fence is bound to the volume the seed claimed with: the seed's data may live on there
    // (others may have joined it), so another, blank volume in the slot never seeds a second cluster.
    const claimed = f.formation.volumeId;
    if (claimed && claimed !== f.volumeId) {
      return {
        kind: 'refuse',
        reason: `${f.slot} claimed the seed with volume ${claimed}, but ${f.instanceId} mounted ${f.volumeId}: the cluster seeded on ${claimed} may exist; not seeding a second one`,
        action: `Find volume ${claimed}: tag it as ${f.slot}'s etcd volume again (and untag ${f.volumeId}) so the seed goes on with its data; if it is gone for good and nothing ever joined it, delete the formed#<cluster> record from the state table to start over.`,
      };
    }
    return { kind: 'seed', resume: true, detail: `${f.slot} holds the seed claim${claimed ? ` with ${claimed}` : ''}: seeding goes on` };
  }
  const withData = f.reports.filter((r) => !r.blank && (f.volumes[r.slot] ?? []).includes(r.volumeId));
  if (withData.length) {
    return {
      kind: 'refuse',
      reason: `no etcd member answers, but the volume of ${withData.map((r) => `${r.slot} (${r.volumeId})`).join(', ')} holds etcd data or a recorded member ID: this is a cluster that existed, not a new one; not seeding`,
      action: 'If the cluster was built outside Quorum Keeper and its members are only down, start them and run `quorum-keeper adopt`; if its data is lost, restore it: `quorum-keeper restore --cluster <cluster> --snapshot latest` (or from the volumes). Never wipe the volumes to get a new cluster.',
    };
  }
  if (f.backupExists === true) {
    return {
      kind: 'refuse', reason: 'no etcd member answers and every volume is blank, but backups of this cluster exist: its data lives on in them; not seeding a new cluster over it',
      action: 'Restore the cluster from its newest backup once every master is InService: `quorum-keeper restore --cluster <cluster> --snapshot latest`. If the backups belong to an old cluster of the same name that is gone for good, move them out of the prefix first.',
    };
  }
  if (f.backupExists === null) {
    return {
      kind: 'refuse', reason: 'no etcd member answers and the backup bucket could not be read: a new cluster is seeded only when no backup of it exists',
      action: 'Give the lifecycle function the backup bucket (QK_BACKUP_BUCKET, as serverless.yml does) and read access to its prefix; the next launch (or the reconciler) tries again.',
    };
  }
  const missing: string[] = [];
  for (const slot of f.slots) {
    const vols = f.volumes[slot] ?? [];
    if (vols.length !== 1) {
      return { kind: 'refuse', reason: `slot ${slot} has ${vols.length === 0 ? 'no' : vols.length} tagged volumes: a new cluster needs exactly one blank volume per member`, action: 'Keep exactly one tagged volume per member (see `quorum-keeper doctor`).' };
    }
    const r = f.reports.find((x) => x.slot === slot && x.volumeId === vols[0]);
    if (!r) missing.push(slot);
  }
  if (missing.length) return { kind: 'wait', detail: `waiting for ${missing.join(', ')} to mount ${missing.length === 1 ? 'its' : 'their'} blank volume${missing.length === 1 ? '' : 's'}` };
  return { kind: 'seed', resume: false, detail: `every slot's volume is blank (${f.slots.join(', ')}) and no backup exists: the cluster is new` };
}
