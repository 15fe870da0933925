/**
 * Disaster-recovery arithmetic. Pure: no AWS, no I/O.
 */

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
