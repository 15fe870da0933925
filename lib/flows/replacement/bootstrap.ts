/**
 * The replacement's bootstrap step: what a master does when no etcd member of its cluster
 * answers. For a cluster that existed, that is a disaster (no quorum): the flow goes on as
 * before (awaiting DR). For a new cluster — every master launched together on blank volumes,
 * never formed, no backup — exactly one master seeds it and the others join it as learners,
 * through the usual membership step (lib/domain/bootstrap.ts says when seeding is allowed; the
 * state table's conditional `formed#` record fences it, lib/aws/formation.ts).
 *
 * Each master that finds no member answering reports its volume (blank or not) and re-reads,
 * about every second: a member answering (the seed, once InService) → join it; the fence taken
 * by another slot → wait for that seed; every slot reported blank, no backup → claim the fence,
 * and the winner seeds (the start step runs etcd as a one-member cluster, --initial-cluster-state
 * new; the caught-up step records its member ID and turns the fence `formed` with the cluster ID).
 */
import { byMember } from '../../aws/ec2';
import type { FormationRecord } from '../../aws/formation';
import { decideSeed, type SeedDecision, type SeedFacts } from '../../domain/bootstrap';
import { TimeoutError } from '../../clock';
import type { Peer } from '../cluster-masters';
import { findPeer, findPeerPatiently, noPeer } from './peer';
import type { ReplacementState as S } from './state';
import { FlowFailure, type FlowRun } from '../run';
import type { Step } from '../steps';

/** What a decision is made from, read now (read-only); `known`: the fence as just read. */
async function seedFacts(s: S, known?: FormationRecord | null): Promise<SeedFacts> {
  const { deps, slot } = s;
  const [masters, volumes, formation, backupExists] = await Promise.all([
    deps.observe.fleet.masterGroups(slot.cluster).then((g) => g.masters),
    deps.observe.volumes.ofCluster(slot.cluster).then(byMember),
    known !== undefined ? Promise.resolve(known) : deps.formation.get(slot.cluster),
    deps.bucket ? deps.objects.any(deps.bucket, slot.cluster) : Promise.resolve(null),
  ]);
  const slots = masters.map((m) => m.member);
  return {
    slot: slot.member, instanceId: s.instanceId, volumeId: s.volume?.volumeId ?? '', slots,
    volumes: Object.fromEntries(slots.map((m) => [m, (volumes.get(m) ?? []).map((v) => v.volumeId)])),
    reports: await deps.formation.reports(slot.cluster, slots),
    backupExists, formation,
  };
}

const volumeHoldsData = (s: S) => Boolean(s.mounted?.hasData || s.mounted?.memberId);

/**
 * Why this slot, its volume holding data, restarts as the seed — or null. Only the slot that
 * seeded, and only while no other slot has a member recorded (the state table's member IDs: a
 * joiner records its own once caught up): its data is then the whole cluster, and starting it
 * again is the one way on (its first instance may have been ABANDONed after the cluster formed,
 * e.g. its API server never came up). A seed others joined is a member like any other.
 */
async function loneSeed(s: S, rec: FormationRecord | null): Promise<string | null> {
  const { deps, slot } = s;
  if (!rec || rec.how !== 'bootstrap' || rec.seed !== slot.member) return null;
  if (rec.state === 'seeding') return `${slot.member} holds the seed claim and its volume the new cluster's data: seeding goes on`;
  const others = (await deps.observe.fleet.masterGroups(slot.cluster)).masters.map((m) => m.member).filter((m) => m !== slot.member);
  const joined = Object.keys(await deps.memberIds.get(slot.cluster, others));
  return joined.length ? null : `${slot.member} seeded ${slot.cluster} and nobody has joined it yet: etcd starts again on its data`;
}

function refusal(d: Extract<SeedDecision, { kind: 'refuse' }>, s: S): FlowFailure {
  return new FlowFailure('bootstrap', d.reason, d.action.replaceAll('<cluster>', s.slot.cluster), 'critical', 'bootstrap-refused', { code: 'bootstrap-refused' });
}


export const bootstrapStep: Step<S> = {
  name: 'bootstrap',
  async run(r: FlowRun, s: S, signal) {
    if (s.peer) return { detail: `${s.peer.member} answers: no bootstrap`, skipped: true };
    const { deps, slot, instanceId } = s;
    const volumeId = s.volume!.volumeId;
    const rec = await deps.formation.get(slot.cluster);
    if (volumeHoldsData(s)) {
      // A volume with data is a member that existed. Only the seed itself, come back on another
      // instance before anyone joined it, starts again (on its data); every other one looks for
      // its cluster as before.
      const lone = await loneSeed(s, rec);
      if (lone) {
        s.seed = true;
        return { detail: lone };
      }
      if (rec?.state === 'formed') throw await noPeer(r, s);
      try {
        s.peer = await findPeerPatiently(r, s, signal);
        return { detail: `${s.peer.member} answers: no bootstrap`, skipped: true };
      } catch (err) {
        // Said to the masters of blank volumes: this cluster existed; they must not seed it anew.
        if (err instanceof FlowFailure && !rec && !signal?.aborted) await deps.formation.report(slot.cluster, { slot: slot.member, volumeId, instanceId, blank: false });
        throw err;
      }
    }
    // A formed cluster with no member answering for the whole peer wait: no quorum.
    if (rec?.state === 'formed' && s.peerWaited) throw await noPeer(r, s);
    let said = '';
    const out = await r.poll<{ peer: Peer } | { seed: string }>(`the new cluster ${slot.cluster} to form`, async () => {
      const peer = await findPeer(r, s, signal);
      if (peer) return { peer };
      const fence = await deps.formation.get(slot.cluster);
      if (!fence) await deps.formation.report(slot.cluster, { slot: slot.member, volumeId, instanceId, blank: true });
      const d = decideSeed(await seedFacts(s, fence));
      if (d.kind === 'refuse') throw refusal(d, s);
      if (d.kind === 'seed' && (d.resume || (await deps.formation.claim(slot.cluster, slot.member, instanceId, volumeId)))) return { seed: d.detail };
      // Formed since the peer step found it unformed: the seed of this round has caught up and is
      // on its way to InService (a peer only then): wait for it, as for a seed still starting.
      const detail = d.kind === 'seed' ? 'another master claimed the seed first: joining it'
        : d.kind === 'formed' ? 'the cluster has just formed: waiting for its seed to come InService, then joining' : d.detail;
      if (detail !== said) r.say('bootstrap', 'wait', (said = detail));
      return undefined;
    }, { timeoutSec: deps.timings.bootstrapTimeoutSec, intervalSec: 1, signal }).catch((err: unknown) => {
      if (!(err instanceof TimeoutError) || signal?.aborted) throw err;
      throw new FlowFailure('bootstrap', `no etcd member of ${slot.cluster} answered within ${deps.timings.bootstrapTimeoutSec} s (${said || 'no decision'})`,
        `A new cluster forms once every master ASG has launched its master and each has mounted its blank volume: check \`quorum-keeper doctor --cluster ${slot.cluster}\`. This master stays InService with its volume mounted; the reconciler brings it in once the cluster has formed.`,
        'critical', 'bootstrap-timeout', { cause: err, code: 'bootstrap-timeout' });
    });
    if ('peer' in out) {
      s.peer = out.peer;
      return { detail: `${out.peer.member} answers (${out.peer.instanceId}): joining the cluster it seeded` };
    }
    s.seed = true;
    return { detail: `seed: ${out.seed}` };
  },
  async plan(_r, s) {
    if (s.peer) return { action: `not needed: ${s.peer.member} answers` };
    if (!s.agentOnline) return { action: 'no etcd member answers: decide whether this is a new cluster once the volume is mounted' };
    const d = decideSeed(await seedFacts(s));
    const line: Record<SeedDecision['kind'], string> = {
      seed: 'claim the seed (DynamoDB conditional write) and start a one-member cluster; the others join it as learners',
      join: 'join the cluster another master seeds, once it answers',
      wait: 'report this volume and wait until every master has reported a blank volume',
      formed: 'stop: the cluster existed; no quorum: this master awaits disaster recovery',
      refuse: 'stop: never seed (data exists); alert, await restore or adopt',
    };
    // What follows depends on the outcome (seed, or join as a learner): the dry run ends here.
    return { action: `${'detail' in d ? d.detail : d.reason}: ${line[d.kind]}`, stop: true };
  },
};
