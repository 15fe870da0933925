/**
 * `observeCluster`: the one reading of a cluster. Every source is read once, side by side where
 * they do not depend on each other, and returned as the plain `ClusterView` (lib/domain/view.ts)
 * that every judge takes. `want` selects the sources, so the probe reads only etcd and the
 * retirement's gate no backups; a part not asked for is absent from the returned type.
 *
 * Identity (which member each slot is) is read here and only here: recorded member IDs, member
 * names, and — only while a slot and a member are both unpaired — the peer URL the slot's master
 * advertises (lib/domain/identity.ts decides).
 */
import { type BackupStore, usableBackups } from '../aws/backups';
import { type Clock, wallNow } from '../clock';
import { type Claim, claimMembers, type SlotIdentity, unclaimed } from '../domain/identity';
import { liveInstanceIds, slotMemberId } from '../domain/judge';
import type { ClusterView, EtcdView, SlotRecordView, SlotView } from '../domain/view';
import type { ObservePorts } from './ports';

/** The ports an observation of `W` reads through: the compiler checks that a flow was given them. */
export type PortsFor<W extends Want> = Pick<ObservePorts, 'fleet'> & Partial<Pick<ObservePorts, 'records'>>
  & (W extends { volumes: true } | { instances: true } ? Pick<ObservePorts, 'volumes'> : unknown)
  & (W extends { instances: true } ? Pick<ObservePorts, 'instances'> : unknown)
  & (W extends { targets: true } ? Pick<ObservePorts, 'targets'> : unknown)
  & (W extends { etcd: object } | { claims: true } ? Pick<ObservePorts, 'etcd'> : unknown)
  & (W extends { backups: BackupStore | null } ? Pick<ObservePorts, 'backups'> : unknown)
  & (W extends { hosts: HostsWant } ? Pick<ObservePorts, 'hosts'> : unknown);

type Candidates = ReadonlyArray<{ instanceId: string; member: string }>;

/** Which masters are asked for their own word (`Want.hosts`). */
export interface HostsWant {
  /**
   * `all`: every live instance of every slot (a retiring master still in Terminating:Wait and a new
   * one in Pending:Wait included); `silent`: only those of slots whose member gave etcd no answer.
   */
  of: 'all' | 'silent';
  /** Also read the DB's revision offline where etcd is down (a recovery's candidate source). */
  offlineRevision?: boolean;
  /** How long one master's answer is waited for (default 60 s). */
  maxWaitSec?: number;
}

export interface Want {
  volumes?: boolean;
  targets?: boolean;
  /**
   * etcd through the first answering master: `via` names which ones, in order, or picks them from
   * the slots just read (default: every slot's InService master).
   */
  etcd?: { leases?: readonly string[]; certs?: boolean; via?: Candidates | ((slots: readonly SlotView[]) => Candidates) };
  /** Which member each slot is (reads etcd too). */
  claims?: boolean;
  /** EC2 state of the instances in Pending:Wait and of those the volumes are attached to (reads volumes too). */
  instances?: boolean;
  /** Backups in this store (null: no bucket given — the part is null). */
  backups?: BackupStore | null;
  records?: boolean;
  /** The masters' own word (`member-status`): evidence the quorum rule takes, and what a restore or recovery needs of each host. */
  hosts?: HostsWant;
}

/**
 * Per observation, from the flow: its clock (the view's time is AWS's, learnt from the answers
 * just read — `wallNow`) and its abort signal (a Lambda's deadline), passed to every host command.
 */
export interface ObserveContext {
  clock: Clock;
  signal?: AbortSignal | undefined;
}

/** The context of a flow's deps: its clock and, when it has one, its signal. */
export const contextOf = (d: { clock: Clock; signal?: AbortSignal | undefined }): ObserveContext => ({ clock: d.clock, ...(d.signal ? { signal: d.signal } : {}) });

type Has<W, K extends keyof Want, P extends keyof ClusterView> = W extends { [k in K]: true | object } ? Pick<ClusterView, P> : unknown;
type HasBackups<W> = W extends { backups: BackupStore | null } ? { backups: ClusterView['backups'] | null } : unknown;
/** The view with exactly the parts `W` asked for. */
export type ViewOf<W extends Want> = Pick<ClusterView, 'cluster' | 'at' | 'slots' | 'badGroups'>
  & Has<W, 'volumes', 'volumes'> & Has<W, 'targets', 'targets'> & Has<W, 'etcd', 'etcd'> & Has<W, 'claims', 'claims' | 'etcd'>
  & Has<W, 'instances', 'instances'> & HasBackups<W> & Has<W, 'records', 'records'> & Has<W, 'hosts', 'hosts'>;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

async function readVolumes(p: Pick<ObservePorts, 'volumes'>, cluster: string): Promise<ClusterView['volumes']> {
  const out: ClusterView['volumes'] = {};
  for (const v of await p.volumes.ofCluster(cluster)) {
    if (v.memberTag) out[v.memberTag] = { volumeId: v.volumeId, volumeState: v.state, attachmentState: v.attachmentState, attachedTo: v.attachedTo };
  }
  return out;
}

async function readRecords(p: Partial<Pick<ObservePorts, 'records'>>, cluster: string, slots: readonly SlotView[]): Promise<ClusterView['records']> {
  const records = p.records;
  if (!records) return { bySlot: {}, highestRevision: null }; // no state table: nothing recorded
  try {
    const bySlot: Record<string, SlotRecordView> = {};
    const highest = records.highestRevision(cluster);
    await Promise.all(slots.map(async (s) => {
      const [held, awaitingDr] = await Promise.all([records.held(cluster, s.member), records.awaitingDr(cluster, s.member)]);
      bySlot[s.member] = {
        held: held && { instanceId: held.instanceId, since: held.since, reason: held.reason },
        awaitingDr: awaitingDr && { instanceId: awaitingDr.instanceId, since: awaitingDr.since, hasData: awaitingDr.hasData },
      };
    }));
    return { bySlot, highestRevision: await highest };
  } catch (err) {
    return { error: `the state table could not be read: ${message(err)}` };
  }
}

async function readBackups(p: Pick<ObservePorts, 'backups'>, store: BackupStore, cluster: string, now: number): Promise<ClusterView['backups']> {
  try {
    const list = await p.backups.list(store, cluster);
    const { usable, futureDated } = usableBackups(list, now);
    return { usable: usable.map((b) => ({ key: b.key, takenAt: b.takenAt })), futureDated: futureDated.map((b) => ({ key: b.key, takenAt: b.takenAt })) };
  } catch (err) {
    return { error: `backups could not be listed: ${message(err)}` };
  }
}

/** Which etcd member each slot is: recorded IDs, names, then the peer URLs of unpaired slots' masters. */
async function readClaims(p: Pick<ObservePorts, 'etcd'> & Partial<Pick<ObservePorts, 'records'>>, cluster: string, slots: readonly SlotView[], etcd: EtcdView, ctx: ObserveContext): Promise<Record<string, Claim>> {
  const members = etcd.members;
  if (!members) return {};
  const recorded = p.records ? await p.records.memberIds(cluster, slots.map((s) => s.member)) : {};
  const ids: SlotIdentity[] = slots.map((s) => ({
    member: s.member, recordedId: recorded[s.member], ...(etcd.via && s.instanceId === etcd.via.instanceId ? { peerUrl: etcd.via.peerUrl } : {}),
  }));
  const first = claimMembers(members, ids);
  const open = unclaimed(members, ids, first);
  if (open.slots.length === 0 || open.members.length === 0) return first;
  await Promise.all(ids.map(async (s, i) => {
    const instanceId = slots[i]!.instanceId;
    if (!open.slots.includes(s.member) || s.peerUrl || !instanceId) return;
    const url = await p.etcd.peerUrlOf(instanceId, ctx.signal ? { signal: ctx.signal } : {});
    if (url) s.peerUrl = url;
  }));
  return claimMembers(members, ids);
}

/**
 * The masters' word, by instance ID: those `want` names (see HostsWant). A master that could not be
 * asked is `unavailable` with the reason. Exported for a flow that asks only after judging what
 * it already read (the reconciler's recovery: only when quorum is not proven).
 */
export async function readHosts(
  p: Pick<ObservePorts, 'hosts'>, view: Pick<ClusterView, 'slots'> & Partial<Pick<ClusterView, 'etcd' | 'claims'>>, want: HostsWant, ctx: Pick<ObserveContext, 'signal'>,
): Promise<ClusterView['hosts']> {
  const answered = new Set<string>(view.etcd?.status.statuses.map((s) => s.memberId) ?? []);
  const silent = (slot: SlotView) => {
    const id = view.etcd ? slotMemberId({ claims: view.claims ?? {}, etcd: view.etcd }, slot.member) : undefined;
    return id === undefined || !answered.has(id);
  };
  const ids = view.slots.filter((s) => want.of === 'all' || silent(s)).flatMap(liveInstanceIds);
  const out: ClusterView['hosts'] = {};
  await Promise.all(ids.map(async (id) => {
    try {
      const report = await p.hosts.report(id, { offlineRevision: want.offlineRevision ?? false, maxWaitSec: want.maxWaitSec ?? 60 }, ctx.signal ? { signal: ctx.signal } : {});
      out[id] = report ? { report } : { unavailable: 'its SSM agent is not online' };
    } catch (err) {
      out[id] = { unavailable: message(err) };
    }
  }));
  return out;
}

/** One observation of `cluster`: the parts `want` asks for. */
export async function observeCluster<W extends Want>(ports: PortsFor<W>, cluster: string, want: W, ctx: ObserveContext): Promise<ViewOf<W>> {
  const w: Want = want;
  // What `want` asks for is there (PortsFor<W>); the readers below each take only what they read.
  const p = ports as ObservePorts;
  const needEtcd = Boolean(w.etcd || w.claims);
  const needVolumes = Boolean(w.volumes || w.instances);
  const { masters, bad } = await p.fleet.masterGroups(cluster);
  const via = w.etcd?.via;
  const candidates = typeof via === 'function' ? via(masters) : via ?? masters.filter((m) => m.instanceId).map((m) => ({ member: m.member, instanceId: m.instanceId! }));
  const [volumes, targets, etcd, records] = await Promise.all([
    needVolumes ? readVolumes(p, cluster) : undefined,
    w.targets ? p.targets.health(cluster) : undefined,
    needEtcd ? p.etcd.survey(candidates, { ...(w.etcd?.leases ? { leases: w.etcd.leases } : {}), ...(w.etcd?.certs ? { certs: true } : {}) }, ctx.signal ? { signal: ctx.signal } : {}) : undefined,
    w.records ? readRecords(p, cluster, masters) : undefined,
  ]);
  // Server time, learnt from the answers just read: ages compared across machines and runs.
  const at = await wallNow(ctx.clock);
  const pending = masters.flatMap((m) => m.instances.filter((i) => i.lifecycleState === 'Pending:Wait').map((i) => i.instanceId));
  const attached = Object.values(volumes ?? {}).map((v) => v.attachedTo).filter((x): x is string => x !== null);
  const [instances, backups, claims] = await Promise.all([
    w.instances ? p.instances.states([...new Set([...pending, ...attached])]) : undefined,
    w.backups ? readBackups(p, w.backups, cluster, at) : undefined,
    w.claims && etcd ? readClaims(p, cluster, masters, etcd, ctx) : undefined,
  ]);
  const hosts = w.hosts ? await readHosts(p, { slots: masters, ...(etcd ? { etcd } : {}), ...(claims ? { claims } : {}) }, w.hosts, ctx) : undefined;
  const view: Partial<ClusterView> & Pick<ClusterView, 'cluster' | 'at' | 'slots' | 'badGroups'> = { cluster, at, slots: masters, badGroups: bad };
  if (w.volumes && volumes) view.volumes = volumes;
  if (w.targets) view.targets = targets ?? null;
  if (etcd) view.etcd = etcd;
  if (claims) view.claims = claims;
  if (instances) view.instances = instances;
  if (w.backups !== undefined) (view as { backups?: ClusterView['backups'] | null }).backups = backups ?? null;
  if (records) view.records = records;
  if (hosts) view.hosts = hosts;
  return view as ViewOf<W>;
}
