/**
 * Taking a running cluster under management (`quorum-keeper adopt`). Pure: no AWS, no I/O.
 *
 * From what the world says — each slot (master ASG) with its InService instance(s), the volumes
 * tagged for the slot, what the slot's master answers (its peer URL, and what is mounted at the
 * volume mount point), the etcd member list read with quorum, the member IDs the state table
 * records, and the cluster's formation record — decide per slot which etcd member it is and what
 * adopting it writes, or refuse, every reason at once, each with what to do.
 *
 * A slot is mapped to its member by the peer URL its master advertises, whatever the member's
 * name (clusters built by hand or by kubeadm name members after hosts). Nothing is guessed: a
 * slot with no or several masters or volumes, a volume elsewhere, data not on the volume, a
 * marker naming something else, a member no slot maps to, a learner, no quorum, or any record
 * disagreeing with the peer-URL mapping is a refusal.
 */
import { claimMembers } from './identity';
import type { AdoptMember, AdoptionFacts, AdoptionPlan, AdoptionSlot, InspectAnswer, Refusal, RefusalCode } from './adoption-types';

export type { AdoptMember, AdoptWrite, AdoptionFacts, AdoptionPlan, AdoptionSlot, EtcdFacts, FormationFacts, InspectAnswer, Refusal, RefusalCode, SlotFacts, VolumeFacts } from './adoption-types';

const one = <T>(xs: readonly T[]): T | undefined => (xs.length === 1 ? xs[0] : undefined);

/** The plan for `facts`: each slot's member and what adopting it writes, or every refusal. */
export function planAdoption(facts: AdoptionFacts): AdoptionPlan {
  const refusals: Refusal[] = [];
  const refuse = (code: RefusalCode, slot: string | null, reason: string, action: string) => refusals.push({ code, slot, reason, action });
  const { cluster } = facts;

  if (facts.slots.length === 0) {
    refuse('no-slots', null, `no master Auto Scaling group is tagged for cluster ${cluster} with a member tag`,
      'Tag each master\'s ASG (and its etcd volume) with the cluster and the member name (operator guide §2), then run adopt again.');
  }
  for (const g of facts.badGroups) {
    refuse('bad-group', null, `ASG ${g.asg} is tagged for ${cluster} but its member tag is ${g.memberTag === undefined ? 'missing' : `not a valid member name (${JSON.stringify(g.memberTag.slice(0, 64))})`}`,
      'Give it a member tag of lowercase letters, digits and dashes (e.g. etcd-a), or remove its cluster tag if it is no master of this cluster.');
  }

  // etcd: a linearizable member list, a leader and quorum, no learners.
  const etcd = facts.etcd;
  const members = etcd.readable ? etcd.members : [];
  if (!etcd.readable) {
    refuse('no-quorum', null, `the etcd member list could not be read: ${etcd.why}`,
      'adopt maps members only from a member list read with quorum: bring the cluster back to health first (`quorum-keeper status`).');
  } else if (!etcd.linearizable || etcd.leader === null || etcd.healthyVoters < etcd.quorum) {
    refuse('no-quorum', null, `etcd has ${etcd.leader === null || !etcd.linearizable ? 'no leader' : 'no quorum'} (${etcd.healthyVoters}/${etcd.voters} healthy voters, quorum ${etcd.quorum})`,
      'adopt maps members only from a member list read with quorum: bring the cluster back to health first (`quorum-keeper status`).');
  }
  for (const m of members.filter((x) => x.isLearner)) {
    refuse('learner', null, `etcd member ${m.name || '(unstarted)'} (${m.id}) is a learner`,
      'Finish that member\'s join (`etcdctl member promote` once it is in sync) or remove it, then run adopt again.');
  }

  // Per slot: one master, one volume, attached to it, mounted at the mount point with etcd data, an agreeing marker.
  const slots: AdoptionSlot[] = [];
  const urlOf = new Map<string, string>();
  const inspectOf = new Map<string, InspectAnswer>();
  for (const s of facts.slots) {
    const row: AdoptionSlot = { slot: s.slot, asg: s.asg, instanceId: one(s.inService) ?? null, volumeId: one(s.volumes)?.volumeId ?? null, memberId: null, etcdName: null, peerUrl: null, action: 'refused', writes: [] };
    slots.push(row);
    if (s.inService.length !== 1) {
      refuse('instances', s.slot, s.inService.length === 0 ? `slot ${s.slot} (ASG ${s.asg}) has no InService instance` : `slot ${s.slot} (ASG ${s.asg}) has ${s.inService.length} InService instances (${s.inService.join(', ')})`,
        'A master ASG holds exactly one master (min = max = desired = 1): wait for its activity to settle, or fix its capacity, then run adopt again.');
    }
    const volume = one(s.volumes);
    if (!volume) {
      refuse('volumes', s.slot, s.volumes.length === 0 ? `no volume is tagged ${cluster}/${s.slot}` : `${s.volumes.length} volumes are tagged ${cluster}/${s.slot} (${s.volumes.map((v) => `${v.volumeId} in ${v.az}`).join(', ')})`,
        s.volumes.length === 0
          ? `Tag the EBS volume that holds ${s.slot}'s etcd data with the cluster and member tags, then run adopt again.`
          : 'Exactly one volume per member may carry its tags (a copy would be taken for the member): untag the ones that are not its live data volume.');
    } else {
      if (!s.availabilityZones.includes(volume.az)) {
        refuse('volume-az', s.slot, `volume ${volume.volumeId} is in ${volume.az}, not in ${s.asg}'s zone (${s.availabilityZones.join(', ') || 'none'})`,
          'A replacement master comes up in its ASG\'s zone and could never attach this volume: tag the volume in that zone, or move the ASG.');
      }
      if (row.instanceId && volume.attachedTo !== row.instanceId) {
        refuse('volume-attachment', s.slot, `volume ${volume.volumeId} is ${volume.attachedTo ? `attached to ${volume.attachedTo}` : 'attached to no instance'}, not to ${s.slot}'s master ${row.instanceId}`,
          `Tag the volume that ${row.instanceId} runs etcd on, or attach this one there; adopt never moves a volume.`);
      }
    }
    const host = s.host;
    if (host && 'problem' in host) {
      refuse('host', s.slot, `${s.slot}'s master ${row.instanceId ?? ''} could not be asked: ${host.problem}`,
        'Every master needs a running SSM agent and /etc/quorum-keeper/host.env (operator guide §1); run `quorum-keeper doctor` to see what is missing.');
      continue;
    }
    if (!host) continue;
    row.peerUrl = host.peerUrl;
    urlOf.set(s.slot, host.peerUrl);
    if (!host.etcdRunning) {
      refuse('etcd-unit', s.slot, `etcd does not run on ${row.instanceId ?? ''} as the systemd unit Quorum Keeper controls (QK_ETCD_UNIT in its host.env, default etcd)`,
        'Quorum Keeper starts, stops and guards etcd through that unit: run the member as that unit (a drop-in setting ExecStart is enough), or set QK_ETCD_UNIT to the unit that runs it. A member run as a static pod or by hand cannot be adopted.');
    }
    const ins = host.inspect;
    if (!ins || !volume) continue;
    if (!ins.onVolume) {
      refuse('not-mounted', s.slot, `${volume.volumeId} is not what is mounted at ${ins.mountPoint} on ${row.instanceId ?? ''} (${ins.device ? `its device ${ins.device} is there` : 'its device is not on this host'}; mounted there: ${ins.mountedDevice ?? 'nothing'})`,
        `Mount the member's volume at ${ins.mountPoint} with etcd's data dir at ${ins.dataDir}; adopt never moves data.`);
    } else if (!ins.hasData) {
      refuse('no-data', s.slot, `no etcd data in ${ins.dataDir} on ${volume.volumeId}: etcd's data dir is not on the tagged volume`,
        `Quorum Keeper expects etcd's data dir at ${ins.dataDir} (<mount point>/data). Move it there (stop that member, move, point etcd at it, start), one member at a time; adopt never moves data.`);
    } else if (ins.dbOpenByEtcd !== true) {
      refuse('data-dir', s.slot, ins.dbOpenByEtcd === false
        ? `the running etcd on ${row.instanceId ?? ''} does not use the data in ${ins.dataDir} on ${volume.volumeId}: no etcd process holds its member/snap/db open (its data dir is elsewhere; this data is stale)`
        : `could not tell whether the running etcd on ${row.instanceId ?? ''} uses the data in ${ins.dataDir} (no /proc to look in)`,
      `Point etcd's --data-dir at ${ins.dataDir} on the volume (moving the data it really uses there, one member at a time). A stale copy taken for the member would bring back an old log under its ID.`);
    }
    const mk = ins.marker;
    if (mk && (mk.cluster !== cluster || mk.member !== s.slot)) {
      refuse('marker', s.slot, `the marker on ${volume.volumeId} names cluster=${mk.cluster} member=${mk.member}, not ${cluster}/${s.slot}`,
        'The volume may belong to another cluster or member: check the volume and ASG tags against the marker (.quorum-keeper-volume at the volume root) and correct whichever is wrong.');
    } else if (mk && mk.volume !== volume.volumeId) {
      refuse('marker', s.slot, mk.volume
        ? `the marker on ${volume.volumeId} names volume ${mk.volume}: this volume is a copy of that one`
        : `the marker on ${volume.volumeId} names no volume (written before volume IDs were recorded)`,
      mk.volume
        ? 'A copy of a member\'s volume must never run as that member: find out which volume is the live one and untag the other.'
        : `Once you are sure this is ${s.slot}'s live volume, add the line volume=${volume.volumeId} to its marker (${ins.mountPoint}/.quorum-keeper-volume) and run adopt again.`);
    } else {
      inspectOf.set(s.slot, ins);
    }
  }

  // Members by the peer URL each slot's master advertises.
  const byUrl = new Map<string, AdoptMember>();
  if (etcd.readable) {
    for (const row of slots) {
      const url = urlOf.get(row.slot);
      if (url === undefined) continue;
      const at = members.filter((m) => m.peerUrls.includes(url));
      const m = one(at);
      if (!m) {
        refuse('peer-url', row.slot, at.length === 0 ? `no etcd member has ${row.slot}'s peer URL ${url} (the URL its master advertises from host.env)` : `${at.length} etcd members list ${row.slot}'s peer URL ${url} (${at.map((x) => x.id).join(', ')})`,
          at.length === 0
            ? `Make QK_HOST_IP and the peer port in ${row.instanceId ?? 'the master'}'s /etc/quorum-keeper/host.env the address its etcd member advertises (\`etcdctl member list\`).`
            : 'Inspect `etcdctl member list` and correct the peer URLs by hand.');
        continue;
      }
      byUrl.set(row.slot, m);
      Object.assign(row, { memberId: m.id, etcdName: m.name || null });
    }
    const owners = new Map<string, string[]>();
    for (const [slot, m] of byUrl) owners.set(m.id, [...(owners.get(m.id) ?? []), slot]);
    for (const [id, ss] of owners) {
      if (ss.length > 1) {
        refuse('shared-member', null, `slots ${ss.join(', ')} all map to etcd member ${id}`,
          'Each master must advertise its own peer URL: check QK_HOST_IP and the ports in their host.env.');
        for (const s of ss) byUrl.delete(s);
      }
    }
    // Strays: only judged once every slot's master said its URL (otherwise its member would look like one).
    if (slots.length > 0 && slots.every((row) => urlOf.has(row.slot))) {
      const mapped = new Set([...owners.keys()]);
      for (const m of members.filter((x) => !mapped.has(x.id) && !x.isLearner)) {
        refuse('stray', null, `etcd member ${m.name || '(unstarted)'} (${m.id}, ${m.peerUrls.join(',')}) belongs to no slot: no master of ${cluster} advertises its peer URL`,
          'Every member needs its own master ASG and volume: tag its ASG and volume for a slot, or remove the member (`etcdctl member remove`) if it is not wanted.');
      }
    }
    // Names must not say otherwise: a member named like another slot's tag is ambiguous.
    const claims = claimMembers(members, slots.filter((row) => urlOf.has(row.slot)).map((row) => ({ member: row.slot, peerUrl: urlOf.get(row.slot) })));
    for (const row of slots) {
      const c = claims[row.slot];
      const m = byUrl.get(row.slot);
      if (c?.basis === 'name' && m && c.id !== m.id) {
        refuse('name-conflict', row.slot, `the etcd member named ${row.slot} is ${c.id}, but ${row.slot}'s master runs ${m.id} (${m.name || 'unnamed'})`,
          'A member named after a slot must run on that slot\'s master: check the ASG tags against `etcdctl member list`.');
      }
    }
  }

  // Records that must agree with the peer-URL mapping: the state table, and the markers.
  for (const row of slots) {
    const m = byUrl.get(row.slot);
    if (!m) continue;
    const recorded = facts.recordedIds[row.slot];
    if (recorded !== undefined && recorded !== m.id) {
      refuse('recorded-id', row.slot, `the state table records member ${recorded} for ${row.slot}, but its master runs ${m.id}`,
        `Find out which is right (\`etcdctl member list\`, the peer URLs); if the record is wrong (left by an earlier cluster of this name), delete the item member#${cluster}/${row.slot} from the state table.`);
    }
    const markerId = inspectOf.get(row.slot)?.marker?.memberId ?? '';
    if (markerId !== '' && markerId !== m.id) {
      refuse('marker-id', row.slot, `the marker on ${row.volumeId ?? 'its volume'} says it holds member ${markerId}, but ${row.slot}'s master runs ${m.id} on it`,
        'Find out which member the data on the volume is (etcd-dump-logs, `etcdctl member list`); adopt never overwrites a recorded identity.');
    }
  }

  // The formation record (the bootstrap fence) must be free or name this very cluster.
  const clusterId = etcd.readable ? etcd.clusterId : null;
  const f = facts.formation;
  let formation: AdoptionPlan['formation'] = 'write';
  if (f && clusterId !== null) {
    if (f.clusterId !== null && f.clusterId !== clusterId) {
      refuse('formation', null, `the state table records cluster ${cluster} as formed with etcd cluster ID ${f.clusterId}, but its etcd runs cluster ID ${clusterId}`,
        'Two clusters of one name? Check which one the state table and these masters belong to; a record from an earlier cluster of this name must be removed by hand (item formed#' + cluster + ').');
    } else if (f.state === 'seeding') {
      refuse('formation', null, `a bootstrap of ${cluster} is seeding it (slot ${f.seed})`,
        'Let the bootstrap finish, or find out why it did not; adopt takes over only a cluster nobody is forming.');
    } else if (f.state === 'formed' && f.clusterId === clusterId) {
      formation = 'already';
    }
  }

  // What adopting writes per slot, once nothing is refused.
  if (refusals.length === 0) {
    for (const row of slots) {
      const m = byUrl.get(row.slot)!;
      const mk = inspectOf.get(row.slot)?.marker ?? null;
      const host = facts.slots.find((x) => x.slot === row.slot)?.host;
      const guarded = host && 'guard' in host && host.guard !== undefined && host.guard !== 'none';
      row.writes = [...(mk ? [] : ['marker' as const]), ...(mk?.memberId === m.id ? [] : ['member-id' as const]), ...(facts.recordedIds[row.slot] === m.id ? [] : ['record' as const]),
        ...(guarded ? [] : ['guard' as const])];
      row.action = row.writes.length ? 'adopt' : 'already';
    }
  }
  return { cluster, clusterId, slots, formation, refusals };
}

/** Whether nothing is left to write: every slot 'already' and the formation recorded. */
export function adopted(p: AdoptionPlan): boolean {
  return p.refusals.length === 0 && p.formation === 'already' && p.slots.every((s) => s.action === 'already');
}

/**
 * Where two plans differ in what they map (cluster ID, and per slot its instance, volume, member,
 * name and peer URL); empty when the same. What is left to write may differ (another run adopted
 * a slot meanwhile): that is no change of mapping.
 */
export function mappingChanges(before: AdoptionPlan, now: AdoptionPlan): string[] {
  const out: string[] = [];
  if (before.clusterId !== now.clusterId) out.push(`etcd cluster ID ${before.clusterId ?? 'unknown'} → ${now.clusterId ?? 'unknown'}`);
  const key = (s: AdoptionSlot) => `instance ${s.instanceId ?? '-'}, volume ${s.volumeId ?? '-'}, member ${s.memberId ?? '-'} (${s.etcdName ?? '-'}) at ${s.peerUrl ?? '-'}`;
  const was = new Map(before.slots.map((s) => [s.slot, key(s)]));
  const is = new Map(now.slots.map((s) => [s.slot, key(s)]));
  for (const slot of new Set([...was.keys(), ...is.keys()])) {
    if (was.get(slot) !== is.get(slot)) out.push(`${slot}: ${was.get(slot) ?? 'no slot'} → ${is.get(slot) ?? 'no slot'}`);
  }
  return out;
}
