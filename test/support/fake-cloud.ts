/**
 * The flows' action ports (lib/aws/ports.ts) and state stores in memory, over a FakeWorld
 * (test/support/fake-world.ts): a detach, a deregistration or a completed hook changes the world
 * the next observation reads, so a flow runs over fakes as it runs over AWS — every change it
 * makes recorded for the test to assert.
 */
import type { Alert, Alerter } from '../../lib/aws/alerts';
import type { StoredBackup } from '../../lib/aws/backups';
import type { Formation, FormationRecord, SlotReport } from '../../lib/aws/formation';
import type { AwaitingDr, HeldHook, HeldHooks } from '../../lib/aws/held-hooks';
import type { MemberIds } from '../../lib/aws/member-ids';
import type { HookRef } from '../../lib/aws/lifecycle';
import type { BackupObjectsPort, LifecyclePort, MachinesPort, TargetActions, VolumeActions } from '../../lib/aws/ports';
import type { Clock } from '../../lib/clock';
import type { FlowDeps, FlowTimings } from '../../lib/flows/deps';
import type { Hosts } from '../../lib/host/commands';
import { type FakeWorld, fakePorts, NOW } from './fake-world';

/** A clock whose sleeps pass at once and move its time on: polls and deadlines run in no time. */
export function steppingClock(start = NOW): Clock & { advance(ms: number): void } {
  let t = start;
  return { now: () => t, sleep: (ms: number) => { t += ms; return Promise.resolve(); }, advance: (ms: number) => { t += ms; } };
}

/** An in-memory lock table: `steal` hands a key to another owner (as an expired lock taken over would). */
export function memoryLock() {
  const owners = new Map<string, string>();
  return {
    owners,
    steal: (key: string) => owners.set(key, 'someone-else'),
    tryAcquire: (key: string, owner: string) => Promise.resolve(owners.has(key) && owners.get(key) !== owner ? false : (owners.set(key, owner), true)),
    extend: (key: string, owner: string) => Promise.resolve(owners.get(key) === owner),
    release: (key: string, owner: string) => Promise.resolve(void (owners.get(key) === owner && owners.delete(key))),
  };
}

export function memoryHeld(clock: Clock): HeldHooks & { records: Map<string, HeldHook> } {
  const records = new Map<string, HeldHook>();
  return {
    records,
    hold: (h) => {
      const key = `${h.cluster}/${h.member}`;
      const rec = { ...h, since: records.get(key)?.instanceId === h.instanceId ? records.get(key)!.since : clock.now() };
      records.set(key, rec);
      return Promise.resolve(rec);
    },
    release: (cluster, member, instanceId) => Promise.resolve(void (records.get(`${cluster}/${member}`)?.instanceId === instanceId && records.delete(`${cluster}/${member}`))),
    get: (cluster, member) => Promise.resolve(records.get(`${cluster}/${member}`) ?? null),
  };
}

export function memoryAwaitingDr(clock: Clock): AwaitingDr & { records: Map<string, { instanceId: string; hasData: boolean; since: number }> } {
  const records = new Map<string, { instanceId: string; hasData: boolean; since: number }>();
  return {
    records,
    mark: (r) => Promise.resolve(void records.set(`${r.cluster}/${r.member}`, { instanceId: r.instanceId, hasData: r.hasData, since: clock.now() })),
    clear: (cluster, member) => Promise.resolve(void records.delete(`${cluster}/${member}`)),
    get: (cluster, member) => Promise.resolve(records.get(`${cluster}/${member}`) ?? null),
  };
}

export function memoryMemberIds(initial: Record<string, string> = {}): MemberIds & { ids: Record<string, string> } {
  const ids = { ...initial };
  return {
    ids,
    get: (_c, slots) => Promise.resolve(Object.fromEntries(slots.flatMap((m) => (ids[m] ? [[m, ids[m]]] : [])))),
    record: (_c, slot, memberId) => Promise.resolve(void (ids[slot] = memberId)),
  };
}

/** The formation record and the slots' bootstrap reports (`record` null: never formed here). */
export function memoryFormation(clock: Clock, record: FormationRecord | null = null): Formation & { record(): FormationRecord | null; reported: SlotReport[] } {
  let rec = record;
  const reported: SlotReport[] = [];
  return {
    record: () => rec,
    reported,
    get: () => Promise.resolve(rec && { ...rec }),
    claim: (cluster, seed, instanceId, volumeId) => Promise.resolve(rec ? false : ((rec = { cluster, state: 'seeding', seed, instanceId, volumeId, clusterId: null, how: 'bootstrap' } as FormationRecord), true)),
    formed: (cluster, clusterId, seed, how) => Promise.resolve(rec && rec.clusterId && rec.clusterId !== clusterId ? false : ((rec = { ...(rec ?? { cluster, seed, instanceId: null, volumeId: null }), state: 'formed', clusterId, how } as FormationRecord), true)),
    report: (_c, r) => Promise.resolve(void reported.push({ ...r, at: clock.now() })),
    reports: (_c, slots) => Promise.resolve(reported.filter((r) => slots.includes(r.slot))),
  };
}

export function memoryAlerter(): Alerter & { alerts: Alert[] } {
  const alerts: Alert[] = [];
  return { alerts, alert: (a) => Promise.resolve(void alerts.push(a)).then(() => true) };
}

/** The action ports over `w`; every change is made to the world and listed in `changes`. */
export function fakeCloud(w: FakeWorld) {
  const changes: string[] = [];
  const completed: Array<{ ref: HookRef; result: string }> = [];
  let heartbeats = 0;
  const slotOf = (instanceId: string) => w.slots.find((s) => s.instances.some((i) => i.instanceId === instanceId));
  const machines: MachinesPort = {
    // Every instance of the world carries the cluster tag (PropagateAtLaunch).
    describe: (id) => {
      const tags: Record<string, string> = w.instances[id] ? { 'quorum-keeper/cluster': 'prod' } : {};
      return Promise.resolve({ instanceId: id, state: w.instances[id]?.state ?? 'gone', az: slotOf(id)?.availabilityZones[0] ?? 'us-east-1b', privateIp: null, tags });
    },
    inGroup: (id) => {
      const slot = slotOf(id);
      return Promise.resolve(slot ? { group: slot.asg, state: slot.instances.find((i) => i.instanceId === id)!.lifecycleState } : null);
    },
  };
  const volume = (id: string) => {
    const v = w.volumes.find((x) => x.volumeId === id);
    if (!v) throw new Error(`volume ${id} not found`);
    return v;
  };
  const asMember = (v: FakeWorld['volumes'][number]) => ({ volumeId: v.volumeId, az: v.az, state: v.state, attachedTo: v.attachedTo, attachmentState: v.attachmentState });
  const volumes: VolumeActions = {
    ofMember: (q) => Promise.resolve(w.volumes.filter((v) => v.memberTag === q.member && v.az === q.az).map(asMember)),
    describe: (id) => Promise.resolve().then(() => asMember(volume(id))),
    attach: (id, instanceId, device) => Promise.resolve().then(() => {
      Object.assign(volume(id), { attachedTo: instanceId, attachmentState: 'attached', state: 'in-use', device });
      changes.push(`attach ${id} ${instanceId}`);
    }),
    detach: (id, instanceId, force) => Promise.resolve().then(() => {
      Object.assign(volume(id), { attachedTo: null, attachmentState: null, state: 'available', device: null });
      changes.push(`detach ${id} ${instanceId}${force ? ' (force)' : ''}`);
    }),
  };
  const targets: TargetActions = {
    groups: () => Promise.resolve(w.targets ? ['tg-api'] : []),
    register: (_tg, id) => Promise.resolve(void (w.targets![id] = 'healthy', changes.push(`register ${id}`))),
    deregister: (_tg, id) => Promise.resolve(void (delete w.targets![id], changes.push(`deregister ${id}`))),
  };
  const lifecycle: LifecyclePort = {
    complete: (ref, result) => Promise.resolve().then(() => {
      completed.push({ ref, result });
      changes.push(`complete ${ref.instanceId} ${result}`);
      return 'done' as const;
    }),
    heartbeat: () => Promise.resolve(void (heartbeats += 1)).then(() => 'done' as const),
    hookOf: (_asg, transition) => Promise.resolve({ name: transition.endsWith('TERMINATING') ? 'terminate' : 'launch', heartbeatTimeoutSec: 600, defaultResult: 'ABANDON' as const }),
    group: (name) => {
      const s = w.slots.find((x) => x.asg === name);
      return Promise.resolve(s ? { tags: { 'quorum-keeper/cluster': 'prod', 'quorum-keeper/etcd-member': s.member }, availabilityZones: s.availabilityZones } : null);
    },
  };
  /** What HeadObject answers per key (a key not here: NotFound). */
  const stored = new Map<string, StoredBackup>();
  const objects: BackupObjectsPort = {
    head: (_store, key) => (stored.has(key) ? Promise.resolve(structuredClone(stored.get(key)!)) : Promise.reject(new Error(`fake bucket: no ${key}`))),
    any: () => Promise.resolve(Array.isArray(w.backups) && w.backups.length > 0),
    presignDownload: (_store, key) => Promise.resolve(`https://bucket.example/${key}?signed`),
    presignUpload: (_store, key) => Promise.resolve({ url: `https://bucket.example/${key}?signed`, headers: [] }),
    delete: (_store, keys) => Promise.resolve(void changes.push(...keys.map((k) => `delete ${k}`))).then(() => []),
  };
  return { machines, volumes, targets, lifecycle, objects, stored, changes, completed, heartbeats: () => heartbeats };
}

const FAST: FlowTimings = {
  minDelaySec: 0.01, maxDelaySec: 0.01, commandMinDelaySec: 0.01, commandMaxDelaySec: 0.01, agentTimeoutSec: 5, volumeTimeoutSec: 5, predecessorTimeoutSec: 5,
  lockTimeoutSec: 5, peerTimeoutSec: 5, catchUpTimeoutSec: 5, targetTimeoutSec: 5, maxRaftLag: 100, departureWaitSec: 30, bootstrapTimeoutSec: 5,
};

/** Every dependency of a lifecycle flow over `w` and `hosts`, in memory. */
export function fakeFlowDeps(w: FakeWorld, hosts: Hosts, o: { clock?: Clock; timings?: Partial<FlowTimings>; formation?: FormationRecord | null } = {}) {
  const clock = o.clock ?? steppingClock(w.now);
  const cloud = fakeCloud(w);
  const observe = fakePorts(w);
  const lock = memoryLock();
  const held = memoryHeld(clock);
  const alerter = memoryAlerter();
  const awaitingDr = memoryAwaitingDr(clock);
  const memberIds = memoryMemberIds(w.memberIds);
  const formation = memoryFormation(clock, o.formation ?? null);
  const events: string[] = [];
  const deps: FlowDeps = {
    observe, machines: cloud.machines, volumes: cloud.volumes, targets: cloud.targets, lifecycle: cloud.lifecycle, objects: cloud.objects,
    lock: lock as unknown as FlowDeps['lock'], held, alerter, hosts, clock,
    awaitingDr, memberIds, formation,
    tags: { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' }, timings: { ...FAST, ...o.timings },
    progress: (e) => events.push(`${e.step} ${e.status}${e.detail ? `: ${e.detail}` : ''}`),
  };
  return { deps, cloud, observe, lock, held, alerter, awaitingDr, memberIds, formation, events };
}
