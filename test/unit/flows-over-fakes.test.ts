/**
 * Flows run over in-memory ports (test/support/fake-world.ts), without moto or etcd: the probe,
 * `status` and the reconciler's read, each on the branches that only need decisions.
 */
import type { ProbeMemory } from '../../lib/domain/health';
import { probeCluster } from '../../lib/flows/probe';
import { readWorld, withLockView } from '../../lib/flows/reconcile';
import { clusterStatus } from '../../lib/flows/status';
import { renderStatus } from '../../cli/render/status';
import { fakePorts, fixedClock, healthyWorld, hexId, hostReport, NOW, status } from '../support/fake-world';
import type { FlowDeps } from '../../lib/flows/deps';
import { noPeer } from '../../lib/flows/replacement/peer';
import type { ReplacementState } from '../../lib/flows/replacement/state';
import { FlowRun } from '../../lib/flows/run';

const TIMINGS = { minDelaySec: 0.01, maxDelaySec: 0.01, commandMinDelaySec: 0.01, commandMaxDelaySec: 0.01 };
const STORE = { bucket: 'b', prefix: 'etcd-backups' };

function memory(start: ProbeMemory | null = null) {
  const puts: ProbeMemory[] = [];
  let cur = start;
  return { puts, get: () => Promise.resolve(cur), put: (_c: string, m: ProbeMemory) => Promise.resolve(void puts.push((cur = m))) };
}

describe('the probe over fakes', () => {
  it('reads the slots and etcd only, judges health, and remembers the raft term and leader for the next probe', async () => {
    const w = healthyWorld();
    const ports = fakePorts(w);
    const mem = memory({ raftTerm: 1, leaderId: hexId('b') });
    const out = await probeCluster({ observe: ports, clock: fixedClock(), timings: TIMINGS, memory: mem }, 'prod', { components: [], quotaBytes: 2 ** 31 });
    expect(ports.reads).toEqual({ fleet: 1, etcd: 1 }); // no identity, volumes, targets or backups
    expect(out.via).toEqual({ member: 'etcd-a', instanceId: 'i-a' });
    expect(out.health).toMatchObject({ hasLeader: true, healthyVoters: 3, quorumMargin: 1, leaderChanges: 1, problems: [] });
    // The fake members answer at revision 5: the highest revision seen is remembered too.
    expect(mem.puts).toEqual([{ raftTerm: 2, leaderId: hexId('a'), leases: {}, highestRevision: 5 }]);
  });

  it('the highest revision seen never goes down (a restore, a member behind): a recovery counts the revisions lost from it', async () => {
    const mem = memory({ raftTerm: 2, leaderId: hexId('a'), highestRevision: 9000 });
    await probeCluster({ observe: fakePorts(healthyWorld()), clock: fixedClock(), timings: TIMINGS, memory: mem }, 'prod', { components: [], quotaBytes: 2 ** 31 });
    expect(mem.puts[0]?.highestRevision).toBe(9000);
  });

  it('no master answers: unreachable, and nothing is remembered (an unread term is no new term)', async () => {
    const w = healthyWorld();
    w.etcd.via = null;
    const mem = memory();
    const out = await probeCluster({ observe: fakePorts(w), clock: fixedClock(), timings: TIMINGS, memory: mem }, 'prod', { components: [], quotaBytes: 2 ** 31 });
    expect(out.via).toBeNull();
    expect(out.health.problems.map((p) => p.code)).toEqual(['unreachable']);
    expect(mem.puts).toEqual([]);
  });
});

describe('status over fakes', () => {
  it('healthy: every slot whole, a fresh backup, the quorum verdict', async () => {
    const st = await clusterStatus({ observe: fakePorts(healthyWorld()), clock: fixedClock() }, 'prod', { store: STORE });
    expect(st).toMatchObject({ healthy: true, problems: [], etcd: { state: 'quorate', leader: 'etcd-a', quorumMargin: 1 }, backup: { ageSec: 600 } });
    expect(st.members.map((m) => [m.member, m.etcd, m.lb])).toEqual([['etcd-a', 'leader', 'healthy'], ['etcd-b', 'follower', 'healthy'], ['etcd-c', 'follower', 'healthy']]);
  });

  it('Quorum Keeper\'s client certificate rejected by every member: status says CANNOT SEE, never "no quorum" (and `recover` would not restore)', async () => {
    const w = healthyWorld();
    // The member list came from etcd once (the survey's local read), but every status ask was refused at the TLS handshake.
    w.etcd.status = { statuses: [], unreachable: ['a', 'b', 'c'].map((h) => ({ endpoint: `https://${h}:2379`, error: 'remote error: tls: bad certificate' })) };
    const st = await clusterStatus({ observe: fakePorts(w), clock: fixedClock() }, 'prod', { store: STORE });
    expect(st.healthy).toBe(false);
    expect(st.etcd.state).toBe('unknown');
    expect(st.problems).toContain('Quorum Keeper cannot see whether etcd has quorum: 0/3 voters follow no leader, quorum 2; 3 gave no answer (3 refused Quorum Keeper\'s TLS handshake: its client certificate?): quorum cannot be judged');
    expect(renderStatus(st).split('\n')[0]).toMatch(/^cluster prod: DEGRADED — CANNOT SEE whether etcd has quorum .*do not restore on this — etcd leader none/);
  });

  it('degraded: a held hook, a slot awaiting DR, a stale backup, an unlisted bucket — each said once', async () => {
    const w = healthyWorld();
    w.held['etcd-b'] = { instanceId: 'i-b', since: NOW - 20 * 60_000, reason: 'stopping would lose quorum' };
    w.awaitingDr['etcd-c'] = { instanceId: 'i-c', since: NOW - 60_000, hasData: true };
    const st = await clusterStatus({ observe: fakePorts(w), clock: fixedClock(NOW + 2 * 3_600_000) }, 'prod', { store: STORE });
    expect(st.healthy).toBe(false);
    expect(st.problems).toEqual([
      'etcd-b: the terminate hook of i-b is held (140 min): stopping would lose quorum',
      expect.stringMatching(/^etcd-c: awaiting disaster recovery on i-c since .* \(volume with its data, etcd stopped\)$/) as unknown,
      'newest backup is 130 min old (objective 60 min)',
    ]);
    w.backups = new Error('AccessDenied');
    expect((await clusterStatus({ observe: fakePorts(w), clock: fixedClock() }, 'prod', { store: STORE })).problems).toContain('backups could not be listed');
  });

  it('no quorum: the verdict says lost, every slot names its gap, and there is no leader', async () => {
    const w = healthyWorld();
    w.etcd.membersFrom = 'local';
    w.etcd.status = { statuses: [status('a', null)], unreachable: [{ endpoint: 'https://b:2379', error: 'connection refused' }, { endpoint: 'https://c:2379', error: 'connection refused' }] };
    const st = await clusterStatus({ observe: fakePorts(w), clock: fixedClock() }, 'prod');
    expect(st.etcd).toMatchObject({ state: 'lost', leader: null });
    expect(st.members.map((m) => m.etcd)).toEqual(['no-leader', 'unreachable', 'unreachable']);
    expect(st.problems.filter((p) => /is not following the leader/.test(p))).toHaveLength(3);
  });
});

describe('the reconciler\'s read over fakes', () => {
  it('the locks and memory it is given decide busy slots, retirements being driven and first sightings', async () => {
    const w = healthyWorld();
    w.slots[0]!.instances = [{ instanceId: 'i-a2', lifecycleState: 'Pending:Wait' }, { instanceId: 'i-a', lifecycleState: 'Terminating:Wait' }];
    w.slots[0]!.instanceId = null;
    w.instances['i-a2'] = { state: 'running', launchedAt: NOW - 90_000 };
    const held = new Set(['prod', 'prod/etcd-a', 'prod/etcd-a/i-a']);
    const read = withLockView({ observe: fakePorts(w), clock: fixedClock() }, { isHeld: (k) => Promise.resolve(held.has(k)) }, { get: () => Promise.resolve({ 'stray#x': NOW - 1000 }) });
    const world = await readWorld(read, 'prod');
    expect(world.lockHeld).toBe(true);
    expect(world.slots[0]).toMatchObject({ member: 'etcd-a', busy: true, retiringBusy: ['i-a'] });
    expect(world.firstSeen).toEqual({ 'stray#x': NOW - 1000, 'pending#i-a2': NOW - 90_000 });
    expect(world.backupAgeSec).toBe('unknown'); // no store given: backups are not judged
  });
});

describe('the replacement with no healthy peer, over fakes: quorum lost only on evidence', () => {
  const TIMEOUT = 'context deadline exceeded';
  /** etcd-b's replacement on i-b2: the member list is read (not linearizably), but no member answers its status in time. */
  const world = () => {
    const w = healthyWorld();
    w.etcd.status = { statuses: [], unreachable: ['a', 'b', 'c'].map((h) => ({ endpoint: `https://${h}:2379`, error: TIMEOUT })) };
    w.etcd.membersFrom = 'local';
    w.slots[1] = { ...w.slots[1]!, instanceId: 'i-b2', instances: [{ instanceId: 'i-b2', lifecycleState: 'Pending:Wait' }] };
    w.memberIds = { 'etcd-a': hexId('a'), 'etcd-b': hexId('b'), 'etcd-c': hexId('c') };
    return w;
  };
  const verdict = async (etcdCRuns: boolean, systemdAnswers = true) => {
    const w = world();
    for (const i of ['i-a', 'i-b2', 'i-c']) {
      const running = i === 'i-a' || (i === 'i-c' && etcdCRuns);
      w.hosts[i] = hostReport(i, { running, stopped: !running && (i !== 'i-c' || systemdAnswers) });
    }
    const deps = { observe: fakePorts(w), clock: fixedClock(), timings: TIMINGS } as unknown as FlowDeps; // only what the verdict reads
    const s = { deps, slot: { cluster: 'prod', member: 'etcd-b', asg: 'prod-etcd-b' }, instanceId: 'i-b2', peerCandidates: ['etcd-a', 'etcd-c'] } as unknown as ReplacementState;
    return noPeer(new FlowRun(deps), s);
  };

  it('etcd-c\'s master says its etcd is stopped and etcd-b\'s old instance is gone: two of three down, quorum lost → awaiting DR', async () => {
    const f = await verdict(false);
    expect(f).toMatchObject({ code: 'no-quorum', message: expect.stringMatching(/^prod has lost quorum: .*2 known down: no quorum can form/) as unknown });
  });

  it('etcd-c\'s master cannot say (systemd did not answer): not running is no evidence of stopped — cannot see', async () => {
    expect(await verdict(false, false)).toMatchObject({ code: 'cannot-see' });
  });

  it('etcd-c runs but does not answer in time: Quorum Keeper cannot see, and says so — never "restore"', async () => {
    const f = await verdict(true);
    expect(f).toMatchObject({ code: 'cannot-see', message: expect.stringMatching(/^CANNOT SEE whether prod has quorum/) as unknown });
    expect(f.action).toMatch(/do NOT restore/);
  });
});
