/**
 * The retirement over in-memory ports and a fake host (test/support/fake-cloud.ts), without moto
 * or etcd: the order of what it does to the world on the way out, and each branch that holds the
 * hook instead — another master out, the master's own last-moment check (`unsafe`, exit 10), and
 * a failure while etcd may still run.
 */
import { retireMaster } from '../../lib/flows/retirement';
import { type HostAnswer, HostFailure } from '../../lib/host/commands';
import { fakeFlowDeps } from '../support/fake-cloud';
import { fakeHosts, type FakeWorld, healthyWorld, type HostScript, status } from '../support/fake-world';

const SLOT = { cluster: 'prod', member: 'etcd-b', asg: 'prod-etcd-b', availabilityZones: ['us-east-1b'] };
const HOOK = { asg: 'prod-etcd-b', hook: 'terminate', token: 't-1', instanceId: 'i-b' };

const running = (i: string): HostAnswer<'member-status'> => ({
  running: true, healthy: true, pid: 42, peerUrl: `https://${i.slice(2)}:2380`, clientUrl: `https://${i.slice(2)}:2379`, hasData: true,
  etcdVersion: '3.5.16', serverVersion: '3.5.16', clusterVersion: '3.5.0', configPending: false, stopped: false, guard: 'full',
});

/** etcd-b's master i-b is retiring (Terminating:Wait); etcd is read through its own member. */
function retiringB(): FakeWorld {
  const w = healthyWorld();
  w.slots[1]!.instances = [{ instanceId: 'i-b', lifecycleState: 'Terminating:Wait' }];
  w.slots[1]!.instanceId = null;
  w.etcd.via = { member: 'etcd-b', instanceId: 'i-b', clientUrl: 'https://b:2379', peerUrl: 'https://b:2380' };
  return w;
}

function retire(w: FakeWorld, script: HostScript = {}, waitSec = 30) {
  const hosts = fakeHosts({
    'member-status': running,
    'member-stop': (i) => ({ ...running(i), running: false, healthy: false, pid: null, stopped: true }),
    'volume-unmount': (_i, c) => ({ result: 'unmounted', volumeId: c.volumeId }),
    ...script,
  });
  const f = fakeFlowDeps(w, hosts);
  return { ...f, hosts, out: retireMaster(f.deps, { slot: SLOT, instanceId: 'i-b', hook: HOOK }, { waitSec }) };
}

const volumeB = (w: FakeWorld) => w.volumes.find((v) => v.volumeId === 'vol-b')!;

describe('the retirement over fakes', () => {
  it('a follower whose peers are whole leaves in order: drained, etcd stopped (the host re-checks quorum), volume unmounted then detached, hook CONTINUE', async () => {
    const w = retiringB();
    const { out, cloud, hosts, held } = retire(w);
    expect(await out).toEqual({ result: 'continued' });
    expect(cloud.changes).toEqual(['deregister i-b', 'detach vol-b i-b', 'complete i-b CONTINUE']);
    expect(hosts.calls.map((c) => c.command)).toEqual([
      { kind: 'member-status' },
      { kind: 'member-stop', ifQuorumWithoutMe: true },
      { kind: 'volume-unmount', volumeId: 'vol-b', cluster: 'prod', member: 'etcd-b' },
    ]);
    expect(volumeB(w).attachedTo).toBeNull();
    expect(held.records.size).toBe(0);
  });

  it('the master\'s last-moment check says "unsafe" (exit 10): etcd keeps running, the volume stays, the hook is HELD — never CONTINUE', async () => {
    const w = retiringB();
    const { out, cloud, hosts, held, alerter } = retire(w, {
      'member-stop': (i) => new HostFailure('unsafe', 'etcd-member.sh stop', i, 'the other voters would not make a quorum without etcd-b', 10),
    }, 5);
    const o = await out;
    expect(o).toMatchObject({ result: 'held', step: 'turn', reason: expect.stringMatching(/checked just before stopping etcd: the other voters would not make a quorum/) as unknown });
    expect(volumeB(w).attachedTo).toBe('i-b');
    expect(cloud.completed).toEqual([]);
    expect(cloud.changes.filter((c) => c.startsWith('detach'))).toEqual([]);
    expect(hosts.calls.some((c) => c.command.kind === 'volume-unmount')).toBe(false);
    expect(held.records.get('prod/etcd-b')).toMatchObject({ instanceId: 'i-b', hook: 'terminate', reason: expect.stringMatching(/checked just before stopping/) as unknown });
    // "Not now" is no failure: no "retiring failed" warning, and etcd was asked to stop on every turn that came (each re-checked there).
    expect(alerter.alerts.map((a) => a.dedupeKey)).toEqual([]);
    expect(hosts.calls.filter((c) => c.command.kind === 'member-stop').length).toBeGreaterThan(1);
  });

  it('another master out (etcd-c without a leader): no drain, no stop; the hook is held and the quorum alert sent once', async () => {
    const w = retiringB();
    w.etcd.status.statuses = [status('a', 'a'), status('b', 'a'), status('c', null)];
    const { out, cloud, hosts, alerter } = retire(w, {}, 5);
    expect(await out).toMatchObject({ result: 'held', reason: expect.stringMatching(/stopping would lose quorum/) as unknown });
    expect(cloud.changes).toEqual([]);
    expect(hosts.calls.map((c) => c.command.kind)).toEqual(['member-status']);
    expect(alerter.alerts.map((a) => a.dedupeKey)).toEqual(['prod/etcd-b/retire-quorum']);
  });

  it('a failure while etcd may still run (the stop itself fails): held, with a warning — the instance is not let go', async () => {
    const w = retiringB();
    const { out, cloud, alerter } = retire(w, { 'member-stop': (i) => new HostFailure('failed', 'etcd-member.sh stop', i, 'systemctl stop timed out', 1) });
    expect(await out).toMatchObject({ result: 'held', step: 'stop' });
    expect(cloud.completed).toEqual([]);
    expect(volumeB(w).attachedTo).toBe('i-b');
    expect(alerter.alerts.map((a) => [a.severity, a.dedupeKey])).toEqual([['warning', 'prod/etcd-b/retire-stop']]);
  });

  it('etcd not running there: nothing to wait for — drained, detached, CONTINUE', async () => {
    const w = retiringB();
    const { out, cloud } = retire(w, { 'member-status': (i) => ({ ...running(i), running: false, healthy: false, stopped: true }) });
    expect(await out).toEqual({ result: 'continued' });
    expect(cloud.changes).toEqual(['deregister i-b', 'detach vol-b i-b', 'complete i-b CONTINUE']);
  });
});
