/**
 * Which etcd a replacement master may bring into a cluster. Pure.
 *
 * etcd's upgrade policy (https://etcd.io/docs/v3.5/upgrades/upgrading-etcd/): patch upgrades, and
 * minor upgrades "one minor version at a time (e.g. 3.4 - 3.5). Upgrades that skip a minor version
 * are not supported and will likely fail." A rolling upgrade replaces members one by one; a
 * cluster of mixed members runs at the *cluster version* — the lowest minor among its members —
 * and moves up only once every member runs the newer one
 * (https://etcd.io/docs/v3.5/upgrades/upgrade_3_5/). Going back needs etcd's downgrade procedure
 * (https://etcd.io/docs/v3.6/downgrades/), never a member simply started on an older binary: a
 * 3.4 member refuses to run in a cluster at 3.5, and its data dir, once 3.5 wrote it, is not 3.4's.
 * So a master whose AMI carries etcd X joins a cluster at version C only when
 * C.major = X.major and C.minor <= X.minor <= C.minor + 1.
 */
export interface EtcdVersion {
  major: number;
  minor: number;
  patch: number;
}

/** "3.5.16" / "3.5.0" / "v3.4.23" → its numbers; null for anything else. */
export function parseEtcdVersion(text: string | null | undefined): EtcdVersion | null {
  const m = /^v?(\d{1,3})\.(\d{1,3})(?:\.(\d{1,4}))?$/.exec((text ?? '').trim());
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0) } : null;
}

export const minorOf = (v: EtcdVersion): string => `${v.major}.${v.minor}`;

export type VersionVerdict =
  | { ok: true; kind: 'same' | 'patch' | 'upgrade'; detail: string }
  | { ok: false; kind: 'downgrade' | 'skip' | 'unknown'; detail: string };

/**
 * Whether a member running `binary` may join (or rejoin) a cluster at `cluster` (its cluster
 * version, the lowest minor of its members). `unknown` when either cannot be read: the caller
 * decides (a replacement refuses nothing it cannot judge; it says so).
 */
export function judgeJoin(binaryText: string | null, clusterText: string | null): VersionVerdict {
  const binary = parseEtcdVersion(binaryText);
  const cluster = parseEtcdVersion(clusterText);
  if (!binary || !cluster) {
    return { ok: false, kind: 'unknown', detail: `etcd versions not known (this master ${binaryText ?? 'unknown'}, cluster ${clusterText ?? 'unknown'})` };
  }
  const b = minorOf(binary);
  const c = minorOf(cluster);
  if (binary.major !== cluster.major || binary.minor < cluster.minor) {
    return { ok: false, kind: 'downgrade', detail: `this master runs etcd ${binaryText}, older than the cluster's version ${c}: a downgrade, which etcd does not allow by replacing a member` };
  }
  if (binary.minor > cluster.minor + 1) {
    return { ok: false, kind: 'skip', detail: `this master runs etcd ${binaryText}, more than one minor version above the cluster's ${c}: etcd upgrades one minor version at a time` };
  }
  if (binary.minor === cluster.minor + 1) return { ok: true, kind: 'upgrade', detail: `etcd ${binaryText} joins a cluster at ${c}: a rolling upgrade to ${b} (the cluster moves to ${b} once every member runs it)` };
  return { ok: true, kind: binaryText === clusterText ? 'same' : 'patch', detail: `etcd ${binaryText} in a cluster at ${c}` };
}
