/**
 * The replacement's etcd steps: mount the volume, read this host's URLs, fix membership (under
 * the cluster lock) through the peer replacement-peer.ts found, start etcd (or, for a new
 * cluster, its seed), wait until it has caught up, and wait for kube-apiserver on this host.
 */
import { judgeQuorum } from '../../domain/judge';
import { planMembership, quorumOf } from '../../domain/membership';
import { EtcdError, type EtcdErrorKind, type MemberId, type MemberList, STATUS_TIMEOUT } from '../../etcd';
import { type HostCommand, HostFailure } from '../../host/commands';
import { ETCD_DEVICE } from '../../host/layout';
import { firstHealthyPeer } from '../cluster-masters';
import type { ReplacementState as S } from './state';
import { FlowFailure, type FlowRun, hostAdvice, hostFailureOf } from '../run';
import { type Step } from '../steps';
import { contextOf } from '../../observe/observe';

/** Host steps of the replacement: idempotent, so an unfinished SSM command is tried once more. */
const onHost = <C extends HostCommand>(r: FlowRun, s: S, command: C, step: string, signal?: AbortSignal) =>
  r.host(s.instanceId, command, {
    step, retryUnfinished: true, signal, action: (e: HostFailure) => `${hostAdvice(e)}${e.kind === 'unfinished' ? ' It was tried twice; the ASG will launch another instance.' : ''}`,
  });

export const mountStep: Step<S> = {
  name: 'mount',
  async run(r, s, signal) {
    const { slot, deps } = s;
    const volumeId = s.volume!.volumeId;
    const m = await onHost(r, s, { kind: 'volume-mount', volumeId, cluster: slot.cluster, member: slot.member, device: ETCD_DEVICE, allowFormat: true }, 'mount', signal).catch(async (err: unknown) => {
      // Refused because it holds something (data without a marker, a foreign marker, a copy):
      // not a blank volume, which the masters of a would-be new cluster must know (bootstrap).
      const kind = hostFailureOf(err)?.kind ?? null;
      if ((kind === 'owner' || kind === 'copy') && !(await deps.formation.get(slot.cluster))) {
        await deps.formation.report(slot.cluster, { slot: slot.member, volumeId, instanceId: s.instanceId, blank: false });
      }
      throw err;
    });
    s.mounted = m;
    return { detail: `${m.device} ${m.formatted ? 'was blank: formatted' : 'mounted'}; etcd data ${m.hasData ? 'present' : 'absent'}` };
  },
  plan(_r, s) {
    return { action: `mount ${s.volume!.volumeId} and check its marker ${s.slot.cluster}/${s.slot.member}; create a filesystem only if the device is blank` };
  },
};

export const urlsStep: Step<S> = {
  name: 'urls',
  async run(r, s, signal) {
    s.urls = await onHost(r, s, { kind: 'member-urls' }, 'urls', signal);
    return { detail: `peer ${s.urls.peerUrl}` };
  },
  async plan(r, s) {
    if (!s.agentOnline) return { action: 'read this host\'s peer and client URLs once its agent is online' };
    s.urls = await onHost(r, s, { kind: 'member-urls' }, 'urls');
    return { action: `this host advertises peer ${s.urls.peerUrl}` };
  },
};

/**
 * Member list and quorum as the peer sees them; refuses without a leader and quorum. The old
 * incarnation of the member being replaced (its peer URL is not the new host's) is dead or
 * about to be: it counts as unhealthy without being asked (dialling it costs the full status
 * timeout, ~2 s of every replacement).
 */
async function readCluster(r: FlowRun, s: S): Promise<MemberList> {
  const view = await s.deps.observe.etcd.membership(s.peer!.instanceId, { ...contextOf(s.deps), skipStale: { member: s.slot.member, peerUrl: s.urls!.peerUrl } });
  const health = judgeQuorum({ members: view.members.members, status: view.status });
  if (health.state !== 'quorate') {
    throw new FlowFailure('membership', `cluster ${s.slot.cluster} has no leader or no quorum (${health.healthyVoters}/${health.voters} healthy voters, quorum ${health.quorum}); no membership change attempted`,
      'Restore quorum first (bring back failed masters) or follow the disaster-recovery runbook.', 'critical', 'no-quorum', { code: 'no-quorum' });
  }
  return view.members;
}

/**
 * etcd refuses reconfiguration for ~5 s after members (re)connect ("unhealthy cluster"): retried.
 * `alsoRetry` adds kinds that are safe to repeat for this change (an idempotent one).
 */
async function retryUnhealthy<T>(r: FlowRun, what: string, fn: () => Promise<T>, alsoRetry: readonly EtcdErrorKind[] = []): Promise<T> {
  // (Boxed: poll treats `undefined` as "not yet", and fn may legitimately return void.)
  const boxed = await r.poll(what, async () => {
    try {
      return { value: await fn() };
    } catch (err) {
      if (err instanceof EtcdError && (err.kind === 'unhealthy-cluster' || alsoRetry.includes(err.kind))) {
        r.say('membership', 'wait', `${what}: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  }, { timeoutSec: 60, intervalSec: 1 });
  return boxed.value;
}

/**
 * Before a member is pointed at this host (`member update`), its current incarnation must be
 * dead: asked at its own client URLs (the view skipped it), it must not answer as that member. A
 * copy of the member's volume on this host would otherwise run an older log under the same
 * member ID next to the live one, and acknowledged writes could be lost (DESIGN.md).
 */
async function refuseLiveIncarnation(r: FlowRun, s: S, before: MemberList, id: MemberId): Promise<void> {
  // This host's own etcd answering as the member is this incarnation, not another one: a member
  // started here on its own data while quorum was lost (the reconciler's start) has published
  // this host's client URL, and its peer URL is what this update fixes.
  const urls = (before.members.find((m) => m.id === id)?.clientUrls ?? []).filter((u) => u !== s.urls?.clientUrl);
  if (urls.length === 0) return;
  const report = await s.peer!.etcd.endpointStatus({ cluster: false, endpoints: urls, timeout: STATUS_TIMEOUT });
  const alive = report.statuses.find((x) => x.memberId === id);
  if (!alive) return;
  r.say('membership', 'fail', `member ${id} still answers at ${alive.endpoint}`);
  throw new FlowFailure('membership', `member ${id} of ${s.slot.member} still answers at ${alive.endpoint}: its current incarnation is alive, so this host's copy of its data is not started and the member is not moved`,
    `Two incarnations of one etcd member would break raft's durability. Find out why ${s.instanceId} holds ${s.slot.member}'s data while the member runs elsewhere (a copied volume?): untag or delete the copy. If the running incarnation is the one to retire, terminate its instance; its retirement stops it cleanly.`,
    'critical', `live-incarnation-${s.slot.member}`);
}

/**
 * The member ID this slot is recorded as: the state table's, else — when the volume holds data —
 * its marker's (the record that travels with the data, so identity survives a lost table). Both
 * present and different with data on the volume: refused, since one of them names the wrong
 * member and guessing could make two incarnations of one. Without data the marker's ID is that of
 * data no longer there and only the table's counts (it finds the old member to remove).
 */
async function recordedIdentity(s: S): Promise<string | undefined> {
  const { slot } = s;
  const table = (await s.deps.memberIds.get(slot.cluster, [slot.member]))[slot.member];
  const marker = s.mounted?.hasData ? s.mounted.memberId ?? undefined : undefined;
  if (table !== undefined && marker !== undefined && table !== marker) {
    throw new FlowFailure('membership', `${slot.member}'s volume ${s.volume?.volumeId ?? ''} says it holds member ${marker}, but the state table records ${table} for the slot`,
      `Find out which member the data on the volume is (etcdutl/etcd-dump-logs on it, or \`etcdctl member list\` and the peer URLs), then correct the record: \`quorum-keeper status\` shows both. Nothing was changed.`,
      'critical', `identity-conflict-${slot.member}`);
  }
  return table ?? marker;
}

export const membershipStep: Step<S> = {
  name: 'membership',
  async run(r, s) {
    const { slot } = s;
    if (s.seed) return { detail: `seed: ${slot.member} starts the cluster alone; the others join it`, skipped: true };
    const peer = s.peer!;
    const peerUrl = s.urls!.peerUrl;
    const before = await readCluster(r, s);
    const recorded = await recordedIdentity(s);
    const p = planMembership(before.members, slot.member, peerUrl, s.mounted!.hasData, recorded);
    s.membership = p.kind;
    // The cluster lock, proven right before the change (a slow read may have outlived it).
    if (p.kind === 'update' || p.kind === 'replace') await r.verifyLocks();
    switch (p.kind) {
      case 'refuse':
        throw new FlowFailure('membership', p.reason, p.action, 'critical', `membership-${slot.member}`);
      case 'in-place':
        s.after = before;
        return { detail: `member ${p.id} already at ${peerUrl}${p.isLearner ? ' (learner)' : ''}`, skipped: true };
      case 'update':
        await refuseLiveIncarnation(r, s, before, p.id);
        // Setting the same peer URL twice changes nothing: a lost answer (timeout) is retried.
        s.after = await retryUnhealthy(r, 'member update', () => peer.etcd.memberUpdate(p.id, [peerUrl]), ['timeout']);
        return { detail: `member update ${p.id}: ${p.from.join(',')} → ${peerUrl}` };
      case 'replace': {
        if (p.removeId) {
          const report = await peer.etcd.endpointStatus({ cluster: true, timeout: STATUS_TIMEOUT });
          if (report.statuses.some((x) => x.memberId === p.removeId)) {
            throw new FlowFailure('membership', `old member ${p.removeId} of ${slot.member} still answers; refusing to remove a live member`, 'Stop the old etcd of this member first.', 'critical', `live-old-${slot.member}`);
          }
          const voters = before.members.filter((m) => !m.isLearner).length;
          const health = judgeQuorum({ members: before.members, status: report });
          if (health.healthyVoters < quorumOf(voters - 1)) throw new FlowFailure('membership', 'removing the old member would lose quorum', 'Restore the other members first.', 'critical', 'no-quorum', { code: 'no-quorum' });
          await retryUnhealthy(r, 'member remove', () => peer.etcd.memberRemove(p.removeId as MemberId));
        }
        const added = await retryUnhealthy(r, 'member add', () => peer.etcd.memberAdd(slot.member, [peerUrl], { learner: true }));
        s.after = { ...before, members: added.members };
        return { detail: `${p.removeId ? `removed ${p.removeId}, ` : ''}added learner ${added.member.id} at ${peerUrl}` };
      }
    }
  },
  plan(_r, s) {
    if (!s.seen?.quorumOk) return { action: 'stop: no leader or no quorum; no membership change; ABANDON and a critical alert', stop: true };
    const peerUrl = s.urls?.peerUrl ?? '(its peer URL)';
    const members = s.seen.list.members;
    const say = (p: ReturnType<typeof planMembership>) => p.kind === 'update' ? `member update ${p.id} → ${peerUrl}` : p.kind === 'in-place' ? `nothing (member ${p.id} already at ${peerUrl})`
      : p.kind === 'replace' ? `${p.removeId ? `member remove ${p.removeId}, ` : ''}member add --learner ${s.slot.member} at ${peerUrl}, promote when in sync` : `stop: ${p.reason}`;
    return { action: `if the volume has data: ${say(planMembership(members, s.slot.member, peerUrl, true))}; if it is blank: ${say(planMembership(members, s.slot.member, peerUrl, false))}` };
  },
};

/**
 * The seed of a new cluster: etcd started as a one-member cluster (its slot's name, a token of
 * its own), then this master is its own peer for the catch-up step. A restart of a seed whose
 * data exists already changes nothing: etcd ignores the initial-cluster settings then.
 */
async function startSeed(r: FlowRun, s: S): Promise<{ detail: string }> {
  const { slot, instanceId, deps } = s;
  const peerUrl = s.urls!.peerUrl;
  await onHost(r, s, { kind: 'member-start', name: slot.member, initialCluster: `${slot.member}=${peerUrl}`, state: 'new', token: `${slot.cluster}-${instanceId}` }, 'start');
  const self = await r.poll(`the seed ${slot.member} to answer`, async () => (await firstHealthyPeer(deps.hosts, [{ instanceId, member: slot.member }], r.runOpts())) ?? undefined,
    { timeoutSec: deps.timings.catchUpTimeoutSec, intervalSec: 1 });
  s.peer = self;
  // A seed restarted on its data on another instance (its first one was ABANDONed after the
  // cluster formed) still lists its old peer URL: it is the only member, so it moves itself.
  const me = (await self.etcd.memberList()).members.find((m) => m.name === slot.member);
  if (me && !me.peerUrls.includes(peerUrl)) {
    await retryUnhealthy(r, 'member update', () => self.etcd.memberUpdate(me.id, [peerUrl]), ['timeout']);
    return { detail: `etcd restarted on the seed's data; member update ${me.id}: ${me.peerUrls.join(',')} → ${peerUrl}` };
  }
  return { detail: `etcd started as the new cluster's first member (${slot.member} at ${peerUrl})` };
}

export const startStep: Step<S> = {
  name: 'start',
  async run(r, s) {
    if (s.seed) return startSeed(r, s);
    const peerUrl = s.urls!.peerUrl;
    // A member keeps its etcd name (it need not be the slot tag: identity is its member ID); a
    // learner just added has none yet and takes the slot's.
    const after = s.after!;
    const name = after.members.find((m) => m.peerUrls.includes(peerUrl))?.name || s.slot.member;
    const initial = after.members
      .filter((m) => m.name !== '' || m.peerUrls.includes(peerUrl))
      .map((m) => `${m.peerUrls.includes(peerUrl) ? name : m.name}=${m.peerUrls.includes(peerUrl) ? peerUrl : (m.peerUrls[0] ?? '')}`)
      .join(',');
    // A repair (no hook) never restarts a running member for a configuration change: with another
    // member down that restart would cost quorum. The difference is said, and applied at etcd's
    // next start.
    const st = await onHost(r, s, { kind: 'member-start', name, initialCluster: initial, state: 'existing', keepRunning: s.hook === null }, 'start');
    const pending = st.configPending ? '; its configuration differs from Quorum Keeper\'s: not restarted for it (a restart could cost quorum), applied at its next start' : '';
    return { detail: `etcd ${st.running ? 'running' : 'not running'}${st.pid ? ` (pid ${st.pid})` : ''}${pending}` };
  },
  plan(_r, s) {
    return { action: `start etcd on ${s.instanceId} (--initial-cluster-state existing)` };
  },
};

export const caughtUpStep: Step<S> = {
  name: 'caught-up',
  async run(r, s) {
    const { deps, slot } = s;
    const peer = s.peer!;
    const peerUrl = s.urls!.peerUrl;
    let promoted = false;
    let caughtUpId: string | undefined;
    const detail = await r.poll(`${slot.member} to join and catch up`, async () => {
      const read = async () => {
        const v = await deps.observe.etcd.membership(peer.instanceId, contextOf(deps));
        s.clusterId = v.members.clusterId;
        const m = v.members.members.find((x) => x.peerUrls.includes(peerUrl));
        if (!m) throw new FlowFailure('caught-up', `${slot.member} vanished from the member list`, 'Re-run the replacement (the reconciler will).');
        return { me: m, report: v.status };
      };
      let { me, report } = await read();
      if (me.isLearner) {
        try {
          await peer.etcd.memberPromote(me.id);
          promoted = true;
        } catch (err) {
          if (err instanceof EtcdError && err.kind === 'learner-not-in-sync') return undefined;
          throw err;
        }
        ({ me, report } = await read());
      }
      const mine = report.statuses.find((x) => x.memberId === me.id);
      const leader = report.statuses.find((x) => x.isLeader);
      // Peer connectivity, not just /health: the leader must see our index move up to its own.
      if (!mine || !leader || mine.leader !== leader.memberId || mine.isLearner) return undefined;
      const lag = leader.raftIndex - mine.raftIndex;
      if (lag > deps.timings.maxRaftLag) return undefined;
      caughtUpId = me.id;
      return `${me.id}${promoted ? ' promoted,' : ''} raft index ${mine.raftIndex} (leader ${leader.raftIndex})`;
    }, { timeoutSec: deps.timings.catchUpTimeoutSec, intervalSec: 1 });
    // The slot's identity from now on (names and URLs may change; the member ID does not): on the
    // volume with its data (the marker) first, then in the state table.
    if (caughtUpId) {
      if (s.mounted?.memberId !== caughtUpId) {
        // The member has joined and caught up: a marker that could not be written is said, not
        // worth abandoning a whole master for (the table's record still maps the slot).
        try {
          await onHost(r, s, { kind: 'volume-record-member-id', memberId: caughtUpId, volumeId: s.volume!.volumeId, cluster: slot.cluster, member: slot.member }, 'caught-up');
          s.mounted = { ...s.mounted!, memberId: caughtUpId };
        } catch (err) {
          if (r.aborted) throw err;
          r.say('caught-up', 'wait', `the member ID could not be written into the volume marker: ${err instanceof Error ? err.message : String(err)}`.slice(0, 300));
        }
      }
      await deps.memberIds.record(slot.cluster, slot.member, caughtUpId, `${s.seed ? 'seeded' : 'replacement'} on ${s.instanceId}`);
      await recordFormed(r, s);
    }
    return { detail };
  },
  plan(_r, s) {
    return { action: `wait until ${s.slot.member} has joined and caught up (lag ≤ ${s.deps.timings.maxRaftLag}; a learner is promoted once in sync)` };
  },
};

/**
 * The cluster exists, from now on never to be seeded again: the seed turns its fence `formed`
 * with etcd's cluster ID; a replacement in a cluster formed before the record existed writes it
 * (`observed`). Already formed: nothing to write.
 */
async function recordFormed(r: FlowRun, s: S): Promise<void> {
  const { deps, slot } = s;
  if (!s.clusterId || (await deps.formation.get(slot.cluster))?.state === 'formed') return;
  const ok = s.seed
    ? await deps.formation.formed(slot.cluster, s.clusterId, slot.member, 'bootstrap')
    : await deps.formation.formed(slot.cluster, s.clusterId, 'observed', 'observed');
  r.say('caught-up', ok ? 'ok' : 'wait', ok ? `${slot.cluster} recorded as formed (etcd cluster ${s.clusterId})` : `${slot.cluster} not recorded as formed: the record names another cluster or seed`);
}

export const apiserverStep: Step<S> = {
  name: 'apiserver',
  async run(r, s, signal) {
    await r.poll('kube-apiserver /readyz', async () => ((await onHost(r, s, { kind: 'apiserver-ready' }, 'apiserver', signal)).ready ? true : undefined), {
      timeoutSec: s.deps.timings.targetTimeoutSec, signal,
    });
    return { detail: '/readyz 200' };
  },
  plan() {
    return { action: 'wait for kube-apiserver /readyz' };
  },
};
