/**
 * The replacement's look at the cluster before it changes anything: a healthy peer to work
 * through (found among the other slots' masters, patiently when the cluster is known to exist),
 * and the version this master's etcd may join it with.
 */
import { judgeJoin, minorOf, parseEtcdVersion } from '../../domain/etcd-version';
import { judgeQuorum } from '../../domain/judge';
import { contextOf, observeCluster } from '../../observe/observe';
import { STATUS_TIMEOUT } from '../../etcd';
import { TimeoutError } from '../../clock';
import { firstHealthyPeer, type Peer } from '../cluster-masters';
import type { ReplacementState as S } from './state';
import { FlowFailure, type FlowRun } from '../run';
import { type Step } from '../steps';

/**
 * The etcd this master's AMI carries against the cluster's version (read from the peer): a
 * downgrade, or an upgrade that skips a minor version, is refused before etcd starts here
 * (lib/domain/etcd-version.ts). An upgrade of one minor is a rolling upgrade, step by step.
 */
export const versionStep: Step<S> = {
  name: 'version',
  run(_r, s) {
    const v = judgeJoin(s.urls?.etcdVersion ?? null, s.peer?.clusterVersion ?? null);
    if (v.ok) return Promise.resolve({ detail: v.detail });
    if (v.kind === 'unknown') return Promise.resolve({ detail: `${v.detail}: not judged`, skipped: true });
    const cluster = parseEtcdVersion(s.peer?.clusterVersion ?? null);
    return Promise.reject(new FlowFailure('version', `${s.slot.member} on ${s.instanceId}: ${v.detail}; etcd not started, membership untouched`,
      `Point ${s.slot.member}'s launch template at an AMI whose etcd is ${cluster ? minorOf(cluster) : 'the cluster\'s minor version'}.x`
      + `${cluster ? ` (or ${cluster.major}.${cluster.minor + 1}.x to upgrade one minor version, replacing every master in turn)` : ''}; the ASG launches again from it.`,
      'critical', `etcd-version-${v.kind}`));
  },
  plan(_r, s) {
    if (!s.urls || !s.peer) return { action: 'compare this master\'s etcd version with the cluster\'s (refuse a downgrade or a skipped minor version)' };
    const v = judgeJoin(s.urls.etcdVersion ?? null, s.peer.clusterVersion ?? null);
    return { action: v.ok ? v.detail : `REFUSE: ${v.detail}` };
  },
};

/** One look for a healthy member of the cluster on another master; null when none answers. */
export async function findPeer(r: FlowRun, s: S, signal?: AbortSignal): Promise<Peer | null> {
  const { deps, slot, instanceId } = s;
  // InService masters first; a master waiting to retire (Terminating:Wait) still runs a healthy
  // member until its turn comes, and during a refresh of every master it may be the only peer.
  const candidates: Array<{ instanceId: string; member: string; rank: number }> = [];
  for (const m of (await deps.observe.fleet.masterGroups(slot.cluster)).masters) {
    if (m.member === slot.member) continue;
    for (const i of m.instances) {
      const rank = ['InService', 'Terminating:Wait'].indexOf(i.lifecycleState);
      if (i.instanceId !== instanceId && rank >= 0) candidates.push({ instanceId: i.instanceId, member: m.member, rank });
    }
  }
  candidates.sort((a, b) => a.rank - b.rank);
  s.peerCandidates = candidates.map((c) => c.member);
  return firstHealthyPeer(deps.hosts, candidates, r.runOpts(600, { signal }));
}

/**
 * No healthy peer answers: is quorum lost, or can Quorum Keeper not see? Judged by the one
 * quorum rule (lib/domain/judge.ts) over a survey of every master, with the hosts' testimony (a
 * master that says its etcd is not running; this slot's member, whose old instance is gone). Lost:
 * `no-quorum` (the master comes in awaiting DR, and the alert says when a restore is due).
 * Anything else: `cannot-see` — the alert says so and never advises a restore (DESIGN.md).
 */
export async function noPeer(r: FlowRun, s: S): Promise<FlowFailure> {
  const tried = s.peerCandidates?.join(', ') || 'none';
  const judged = await judgeWithoutPeer(s).catch((err: unknown) => {
    if (r.aborted) throw err;
    return { state: 'unknown' as const, why: `the cluster could not be surveyed: ${err instanceof Error ? err.message : String(err)}` };
  });
  if (judged.state === 'lost') {
    return new FlowFailure('peer', `${s.slot.cluster} has lost quorum: ${judged.why} (no healthy peer answered; tried ${tried})`,
      'If the other masters are only stopped and their data is intact, bring them back: the reconciler then brings this master in. Only if a majority\'s etcd data is gone for good, follow the disaster-recovery runbook (restore from the newest verified backup). Do not replace masters one by one.',
      'critical', 'no-quorum', { code: 'no-quorum' });
  }
  return new FlowFailure('peer', `CANNOT SEE whether ${s.slot.cluster} has quorum: ${judged.why} (no healthy peer answered; tried ${tried})`,
    'Quorum is not known to be lost: do NOT restore. Check Quorum Keeper\'s access to the masters (SSM agents, its etcd client certificate) and the masters\' etcd; the ASG launches another instance, which tries again.',
    'critical', 'cannot-see', { code: 'cannot-see' });
}

async function judgeWithoutPeer(s: S): Promise<{ state: 'quorate' | 'lost' | 'unknown'; why: string }> {
  const { deps } = s;
  // Every slot's live masters (this new one included: Pending:Wait is live, and a re-driven
  // replacement may have started etcd already) say whether etcd is known stopped there.
  const view = await observeCluster(deps.observe, s.slot.cluster, { etcd: {}, claims: true, hosts: { of: 'all' } }, contextOf(deps));
  const q = judgeQuorum(view.etcd, view);
  return { state: q.state, why: q.why };
}

/** findPeer, retried for a while: a leader election after a crash makes /health false briefly. */
export async function findPeerPatiently(r: FlowRun, s: S, signal?: AbortSignal): Promise<Peer> {
  return r.poll('a healthy etcd peer', async () => (await findPeer(r, s, signal)) ?? undefined, { timeoutSec: s.deps.timings.peerTimeoutSec, signal }).catch((err: unknown) => {
    if (err instanceof TimeoutError && !signal?.aborted) return noPeer(r, s).then((f) => Promise.reject(f));
    throw err;
  });
}

export const peerStep: Step<S> = {
  name: 'peer',
  async run(r, s, signal) {
    // A cluster never formed (or formed before Quorum Keeper kept the record) whose members do
    // not answer at once: the bootstrap step decides, once the volume is mounted, whether it is new.
    // A formed cluster: looked for patiently (an election after a crash), and if none answers the
    // bootstrap step says no quorum (or restarts a lone seed).
    let p = await findPeer(r, s, signal);
    if (!p && (await s.deps.formation.get(s.slot.cluster))?.state === 'formed') {
      p = await findPeerPatiently(r, s, signal).catch((err: unknown) => {
        if (!(err instanceof FlowFailure) || (err.code !== 'no-quorum' && err.code !== 'cannot-see') || signal?.aborted) throw err;
        s.peerWaited = true;
        return null;
      });
    }
    if (!p) return { detail: `no etcd member answers${s.peerWaited ? ` (waited ${s.deps.timings.peerTimeoutSec} s)` : ' and the cluster was never formed here'}: see bootstrap`, skipped: true };
    s.peer = p;
    return { detail: `${p.member} on ${p.instanceId}` };
  },
  async plan(r, s) {
    const peer = await findPeer(r, s);
    if (!peer) {
      if ((await s.deps.formation.get(s.slot.cluster))?.state === 'formed') throw await noPeer(r, s);
      return { action: 'no etcd member answers and the cluster was never formed here: see bootstrap' };
    }
    s.peer = peer;
    const list = await peer.etcd.memberList();
    const health = judgeQuorum({ members: list.members, status: await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT }) });
    s.seen = { list, quorumOk: health.state === 'quorate' };
    return { action: `read etcd through ${peer.member} (${peer.instanceId}): ${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}, leader ${health.leader ?? 'none'}` };
  },
};
