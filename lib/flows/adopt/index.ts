/**
 * `quorum-keeper adopt`: take a running cluster (built by hand, by kubeadm, by anything but
 * Quorum Keeper) under management, without touching etcd.
 *
 *   read (ASGs, tagged volumes, per master: `etcd-member.sh status` and `etcd-mount.sh --inspect`; the member
 *   list with quorum; recorded IDs; the formation record) → plan (lib/domain/adoption.ts)
 *   → [operator confirms] → cluster lock + every slot lock → read and plan again (refused if the
 *   mapping changed) → per slot: marker (`etcd-mount.sh --adopt`), member ID in it
 *   (`--record-member-id`), the state table record → formation record (the bootstrap fence)
 *   → read once more: every slot 'already'.
 *
 * `planAdoption` only reads. `adoptCluster` writes only what the plan lists, so a second run
 * finds everything 'already' and changes nothing. etcd is never stopped, started or
 * reconfigured, and no data is moved.
 */
import { byMember } from '../../aws/ec2';
import {
  adopted, type AdoptionFacts, type AdoptionPlan, type AdoptionSlot, type EtcdFacts, mappingChanges, planAdoption as decide, type Refusal, type SlotFacts,
} from '../../domain/adoption';
import { judgeQuorum } from '../../domain/judge';
import { check, patterns } from '../../validate';
import type { FlowDeps } from '../deps';
import { slotLockKey } from '../master-slot';
import { FlowFailure, FlowRun } from '../run';
import type { ObservePorts, TaggedVolumeFact } from '../../observe/ports';

export type { AdoptionPlan, AdoptionSlot, Refusal } from '../../domain/adoption';

export type AdoptDeps = Pick<FlowDeps, 'lock' | 'memberIds' | 'formation' | 'hosts' | 'clock' | 'tags' | 'timings' | 'progress' | 'signal'>
  & { observe: Pick<ObservePorts, 'fleet' | 'volumes' | 'etcd'> };

/** Adopt wrote nothing: the plan had refusals, the world changed since it was shown, or another flow drives a slot. */
export class AdoptRefused extends Error {
  override readonly name = 'AdoptRefused';
  constructor(readonly refusals: readonly Refusal[], readonly plan: AdoptionPlan | null) {
    super(refusals.map((r) => `${r.slot ? `${r.slot}: ` : ''}${r.reason}`).join('; '));
  }
}

export interface AdoptOutcome {
  /** 'unchanged': everything was adopted already (nothing written). */
  result: 'adopted' | 'unchanged';
  /** The plan the run carried out (read under the locks). */
  plan: AdoptionPlan;
  /** What was written, one line each. */
  wrote: string[];
  ms: number;
}

/** The formation record's seed for an adopted cluster. */
const ADOPT = 'adopt';

const message = (err: unknown) => (err instanceof Error ? err.message : String(err)).slice(0, 300);

/** What the slot's one InService master says: its peer URL, whether etcd runs as its unit, and, with one tagged volume, the inspection. */
async function askHost(r: FlowRun, deps: AdoptDeps, cluster: string, slot: string, instanceId: string, volume: TaggedVolumeFact | undefined): Promise<SlotFacts['host']> {
  try {
    if (!(await deps.hosts.online(instanceId))) return { problem: `the SSM agent on ${instanceId} is not online` };
    const opts = r.hostOpts(120);
    const [status, inspect] = await Promise.all([
      deps.hosts.run(instanceId, { kind: 'member-status' }, opts),
      volume && patterns.volumeId.test(volume.volumeId)
        ? deps.hosts.run(instanceId, { kind: 'volume-inspect', volumeId: volume.volumeId, cluster, member: slot }, opts)
        : Promise.resolve(null),
    ]);
    return { peerUrl: status.peerUrl, etcdRunning: status.running, inspect, guard: status.guard };
  } catch (err) {
    return { problem: message(err) };
  }
}

/** The member list with quorum, as one of the masters sees it (one SSM round trip). */
async function readEtcd(deps: AdoptDeps, candidates: ReadonlyArray<{ instanceId: string; member: string }>): Promise<EtcdFacts> {
  if (candidates.length === 0) return { readable: false, why: 'no master to ask' };
  const e = await deps.observe.etcd.survey(candidates, {}, deps.signal ? { signal: deps.signal } : {});
  if (!e.via || !e.members || e.clusterId === null) return { readable: false, why: `no master's etcd answered (${e.tried.join('; ') || 'none tried'})` };
  const h = judgeQuorum(e);
  return {
    readable: true, linearizable: e.membersFrom === 'quorum', clusterId: e.clusterId,
    members: e.members.map((m) => ({ id: m.id, name: m.name, peerUrls: m.peerUrls, isLearner: m.isLearner })),
    leader: h.leader, healthyVoters: h.healthyVoters, voters: h.voters, quorum: h.quorum,
  };
}

interface Read { plan: AdoptionPlan; facts: AdoptionFacts; volumes: Map<string, TaggedVolumeFact[]> }

/** Reads everything the plan is made from, and makes it. Read-only. */
async function readAndPlan(r: FlowRun, deps: AdoptDeps, cluster: string): Promise<Read> {
  check('clusterName', cluster, 'cluster');
  const [{ masters, bad }, volumes, formation] = await Promise.all([
    deps.observe.fleet.masterGroups(cluster), deps.observe.volumes.ofCluster(cluster).then(byMember), deps.formation.get(cluster),
  ]);
  const inService = (m: (typeof masters)[number]) => m.instances.filter((i) => i.lifecycleState === 'InService').map((i) => i.instanceId);
  const [hosts, etcd, recordedIds] = await Promise.all([
    Promise.all(masters.map(async (m) => {
      const ids = inService(m);
      const vols = volumes.get(m.member) ?? [];
      return ids.length === 1 ? askHost(r, deps, cluster, m.member, ids[0]!, vols.length === 1 ? vols[0] : undefined) : null;
    })),
    readEtcd(deps, masters.flatMap((m) => inService(m).map((instanceId) => ({ instanceId, member: m.member })))),
    deps.memberIds.get(cluster, masters.map((m) => m.member)),
  ]);
  const facts: AdoptionFacts = {
    cluster,
    badGroups: bad,
    slots: masters.map((m, i) => ({
      slot: m.member, asg: m.asg, availabilityZones: m.availabilityZones, inService: inService(m),
      volumes: (volumes.get(m.member) ?? []).map(({ volumeId, az, attachedTo }) => ({ volumeId, az, attachedTo })), host: hosts[i]!,
    })),
    etcd, recordedIds,
    formation: formation ? { state: formation.state, clusterId: formation.clusterId, how: formation.how, seed: formation.seed } : null,
  };
  return { plan: decide(facts), facts, volumes };
}

/** What adopting `cluster` would do now, or why it is refused (`plan.refusals`). Read-only. */
export async function planAdoption(deps: AdoptDeps, cluster: string): Promise<AdoptionPlan> {
  const r = new FlowRun(deps, { owner: 'adopt-plan' });
  return r.step('read', async () => {
    const { plan } = await readAndPlan(r, deps, cluster);
    return { value: plan, detail: summary(plan) };
  });
}

function summary(p: AdoptionPlan): string {
  if (p.refusals.length) return `${p.refusals.length} reason(s) to refuse`;
  const todo = p.slots.filter((s) => s.action === 'adopt').map((s) => s.slot);
  return `${p.slots.length} slot(s) mapped by peer URL (etcd cluster ${p.clusterId ?? '?'}); ${todo.length ? `to adopt: ${todo.join(', ')}` : 'every slot adopted already'}${p.formation === 'write' ? '; formation to record' : ''}`;
}

/**
 * Adopts `cluster` as `plan` (shown to the operator) says: under the cluster lock and every slot
 * lock, reads and plans again and refuses (AdoptRefused, nothing written) if anything is refused
 * now or the mapping differs from `plan`; then writes what is missing, slot by slot, and the
 * formation record, and checks that a fresh read finds the cluster adopted.
 */
export async function adoptCluster(deps: AdoptDeps, cluster: string, plan: AdoptionPlan): Promise<AdoptOutcome> {
  check('clusterName', cluster, 'cluster');
  if (plan.refusals.length) throw new AdoptRefused(plan.refusals, plan);
  const t0 = deps.clock.now();
  const r = new FlowRun(deps, { owner: 'adopt', timeoutAction: 'Run adopt again: it continues from what is written.' });
  const slots = plan.slots.map((s) => s.slot);
  const underSlots = async (i: number): Promise<AdoptOutcome> => {
    if (i === slots.length) return adoptLocked(r, deps, cluster, plan, t0);
    const key = slotLockKey({ cluster, member: slots[i]! });
    const got = await r.hold(key, 'try', () => underSlots(i + 1));
    if (got === null) {
      throw new AdoptRefused([{ code: 'busy', slot: slots[i]!, reason: `another flow is driving ${slots[i]!} (it holds the ${key} lock)`, action: 'Let that replacement or repair finish, then run adopt again.' }], plan);
    }
    return got;
  };
  const out = await r.hold(cluster, 'wait', () => underSlots(0), { step: 'lock', waitDetail: `another flow holds the ${cluster} cluster lock` });
  if (out === null) {
    throw new AdoptRefused([{ code: 'busy', slot: null, reason: `the ${cluster} cluster lock stayed held for ${deps.timings.lockTimeoutSec} s`, action: 'Another flow is changing this cluster; run adopt again later.' }], plan);
  }
  return out;
}

async function adoptLocked(r: FlowRun, deps: AdoptDeps, cluster: string, shown: AdoptionPlan, t0: number): Promise<AdoptOutcome> {
  const now = await r.step('re-read', async () => {
    const read = await readAndPlan(r, deps, cluster);
    return { value: read, detail: `under the cluster lock: ${summary(read.plan)}` };
  });
  const { plan } = now;
  if (plan.refusals.length) throw new AdoptRefused(plan.refusals, plan);
  const changed = mappingChanges(shown, plan);
  if (changed.length) {
    throw new AdoptRefused([{
      code: 'changed', slot: null, reason: `the cluster changed since the plan was shown: ${changed.join('; ')}`, action: 'Look at the new plan (`quorum-keeper adopt --dry-run`) and run adopt again.',
    }], plan);
  }
  const wrote: string[] = [];
  for (const s of plan.slots) {
    if (s.action !== 'adopt') continue;
    wrote.push(...(await adoptSlot(r, deps, cluster, s, now.volumes.get(s.slot)?.[0]?.device ?? null)));
  }
  if (plan.formation === 'write') {
    await r.step('formation', async () => {
      const id = plan.clusterId!;
      if (!(await deps.formation.formed(cluster, id, ADOPT, 'adopt'))) {
        throw new FlowFailure('formation', `the state table's formation record of ${cluster} names another etcd cluster ID than ${id} (written since the re-read)`,
          'Find out which cluster the record belongs to (`quorum-keeper status`); the markers and member IDs written so far are right for this cluster and stay.', 'critical', 'adopt-formation');
      }
      wrote.push(`${cluster}: formed (adopted), etcd cluster ID ${id}`);
      return { value: undefined, detail: `${cluster} recorded as formed with etcd cluster ID ${id}: never seeded again` };
    });
  }
  await r.step('verify', async () => {
    const after = (await readAndPlan(r, deps, cluster)).plan;
    if (!adopted(after)) {
      const left = after.refusals.length ? after.refusals.map((x) => x.reason).join('; ') : after.slots.filter((s) => s.action !== 'already').map((s) => `${s.slot}: ${s.writes.join(', ')}`).join('; ');
      throw new FlowFailure('verify', `after adopting, a fresh read does not find ${cluster} adopted: ${left || 'formation not recorded'}`, 'Run adopt again (it writes only what is missing); if this repeats, read the host command output in SSM Run Command history.');
    }
    return { value: undefined, detail: `every slot adopted: ${after.slots.map((s) => `${s.slot}=${s.memberId ?? '?'}`).join(', ')}` };
  });
  return { result: wrote.length ? 'adopted' : 'unchanged', plan, wrote, ms: deps.clock.now() - t0 };
}

/** The marker, the member ID in it, the state table record: whichever `s.writes` lists, in that order. */
async function adoptSlot(r: FlowRun, deps: AdoptDeps, cluster: string, s: AdoptionSlot, attachedAs: string | null): Promise<string[]> {
  const instanceId = check('instanceId', s.instanceId!, 'instance ID');
  const volumeId = check('volumeId', s.volumeId!, 'volume ID');
  const memberId = check('memberIdHex', s.memberId!, 'member ID');
  const member = check('memberName', s.slot, 'member');
  const on = { volumeId, cluster, member };
  const wrote: string[] = [];
  if (s.writes.includes('marker')) {
    await r.step('marker', async () => {
      const device = attachedAs && patterns.device.test(attachedAs) ? { device: attachedAs } : {};
      const m = await r.host(instanceId, { kind: 'volume-adopt', ...on, ...device }, { step: 'marker', retryUnfinished: true });
      if (!m.hasData) throw new FlowFailure('marker', `${volumeId} on ${instanceId} holds no etcd data after all`, 'Run adopt again to see why; nothing else was written for this slot.');
      wrote.push(`${member}: marker ${cluster}/${member} on ${volumeId}`);
      return { value: undefined, detail: `${member}: ${volumeId} marked ${cluster}/${member} (data at ${m.mountPoint}/data)` };
    });
  }
  if (s.writes.includes('member-id')) {
    await r.step('member-id', async () => {
      await r.host(instanceId, { kind: 'volume-record-member-id', memberId, ...on }, { step: 'member-id', retryUnfinished: true });
      wrote.push(`${member}: member ID ${memberId} in the marker on ${volumeId}`);
      return { value: undefined, detail: `${member}: member ${memberId} (${s.etcdName ?? 'unnamed'}) recorded in ${volumeId}'s marker` };
    });
  }
  if (s.writes.includes('guard')) {
    // etcd starts at boot only on its verified volume (the marker just written), never on the bare
    // mount point: the guard alone — its unit stays the AMI's until Quorum Keeper first starts it.
    await r.step('guard', async () => {
      const g = await r.host(instanceId, { kind: 'member-guard' }, { step: 'guard', retryUnfinished: true });
      wrote.push(`${member}: boot guard on etcd's unit on ${instanceId}`);
      return { value: undefined, detail: `${member}: boot guard ${g.result} on ${instanceId} (${g.guard})` };
    });
  }
  if (s.writes.includes('record')) {
    await r.step('record', async () => {
      await deps.memberIds.record(cluster, member, memberId, `adopt: ${s.etcdName ?? ''} at ${s.peerUrl ?? ''} on ${instanceId}`);
      wrote.push(`${member}: state table member#${cluster}/${member} = ${memberId}`);
      return { value: undefined, detail: `${member}: the state table maps the slot to member ${memberId}` };
    });
  }
  return wrote;
}
