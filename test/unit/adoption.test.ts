/**
 * `adopt`'s decision (lib/domain/adoption.ts): a slot is mapped to its etcd member by the peer URL
 * its master advertises, whatever the member's name; every ambiguity is refused with its reason.
 * One row per refusal, each made from the happy cluster by the one change that must be refused.
 */
import { adopted, type AdoptionFacts, mappingChanges, planAdoption, type RefusalCode, type SlotFacts } from '../../lib/domain/adoption';

const SLOTS = ['etcd-a', 'etcd-b', 'etcd-c'];
const AZ = ['us-east-1a', 'us-east-1b', 'us-east-1c'];
const ID = ['8e9e05c52164694d', '91bc3c398fb3c146', 'fd422379fda50e48'];
const NAME = ['ip-10-0-1-10.ec2.internal', 'ip-10-0-2-11.ec2.internal', 'ip-10-0-3-12.ec2.internal'];
const URL = ['https://10.0.1.10:2380', 'https://10.0.2.11:2380', 'https://10.0.3.12:2380'];
const INSTANCE = ['i-0000000000000000a', 'i-0000000000000000b', 'i-0000000000000000c'];
const VOLUME = ['vol-0000000000000000a', 'vol-0000000000000000b', 'vol-0000000000000000c'];

/** A hand-built cluster, nothing adopted yet: no markers, nothing recorded. */
function facts(): AdoptionFacts {
  const slots: SlotFacts[] = SLOTS.map((slot, i) => ({
    slot, asg: `prod-master-${AZ[i]}`, availabilityZones: [AZ[i]!], inService: [INSTANCE[i]!],
    volumes: [{ volumeId: VOLUME[i]!, az: AZ[i]!, attachedTo: INSTANCE[i]! }],
    host: {
      peerUrl: URL[i]!, etcdRunning: true,
      inspect: { volumeId: VOLUME[i]!, device: '/dev/nvme1n1', mountedDevice: '/dev/nvme1n1', onVolume: true, mountPoint: '/var/lib/etcd', dataDir: '/var/lib/etcd/data', hasData: true, dbOpenByEtcd: true, marker: null },
    },
  }));
  return {
    cluster: 'prod', badGroups: [], slots,
    etcd: {
      readable: true, linearizable: true, clusterId: 'cdf818194e3a8c32',
      members: SLOTS.map((_, i) => ({ id: ID[i]!, name: NAME[i]!, peerUrls: [URL[i]!], isLearner: false })),
      leader: ID[1]!, healthyVoters: 3, voters: 3, quorum: 2,
    },
    recordedIds: {}, formation: null,
  };
}

type Host = { peerUrl: string; etcdRunning: boolean; inspect: NonNullable<Extract<SlotFacts['host'], { peerUrl: string }>['inspect']> };
const hostOf = (f: AdoptionFacts, i: number) => f.slots[i]!.host as Host;
const slot = (f: AdoptionFacts, i: number) => f.slots[i] as { -readonly [K in keyof SlotFacts]: SlotFacts[K] };
const marked = (f: AdoptionFacts, i: number, memberId = ID[i]!) => {
  hostOf(f, i).inspect.marker = { cluster: 'prod', member: SLOTS[i]!, volume: VOLUME[i]!, memberId };
  // Adopted before: the boot guard is on etcd's unit.
  Object.assign(f.slots[i]!.host!, { guard: 'unit' });
};

describe('planAdoption: the happy paths', () => {
  it('a hand-built cluster whose member names are host names: each slot mapped by peer URL, everything to write', () => {
    const p = planAdoption(facts());
    expect(p.refusals).toEqual([]);
    expect(p.clusterId).toBe('cdf818194e3a8c32');
    expect(p.formation).toBe('write');
    expect(p.slots).toEqual(SLOTS.map((s, i) => ({
      slot: s, asg: `prod-master-${AZ[i]}`, instanceId: INSTANCE[i], volumeId: VOLUME[i], memberId: ID[i], etcdName: NAME[i], peerUrl: URL[i],
      action: 'adopt', writes: ['marker', 'member-id', 'record', 'guard'],
    })));
    expect(adopted(p)).toBe(false);
  });

  it('adopted already (markers with member IDs, records, formation): every slot "already", nothing to write', () => {
    const f = facts();
    SLOTS.forEach((s, i) => marked(f, i));
    f.recordedIds = Object.fromEntries(SLOTS.map((s, i) => [s, ID[i]!]));
    f.formation = { state: 'formed', clusterId: 'cdf818194e3a8c32', how: 'adopt', seed: 'adopt' };
    const p = planAdoption(f);
    expect(p.refusals).toEqual([]);
    expect(p.slots.map((s) => [s.action, s.writes])).toEqual(SLOTS.map(() => ['already', []]));
    expect(p.formation).toBe('already');
    expect(adopted(p)).toBe(true);
  });

  it('half-done (a marker without its member ID, a missing record): only what is missing is written', () => {
    const f = facts();
    marked(f, 0, '');
    marked(f, 1);
    f.recordedIds = { 'etcd-b': ID[1]!, 'etcd-c': ID[2]! };
    const p = planAdoption(f);
    expect(p.refusals).toEqual([]);
    expect(p.slots.map((s) => s.writes)).toEqual([['member-id', 'record'], [], ['marker', 'member-id', 'guard']]);
    expect(p.slots.map((s) => s.action)).toEqual(['adopt', 'already', 'adopt']);
  });

  it('a master adopted before the boot guard existed: only the guard is written (its unit keeps the AMI\'s ExecStart)', () => {
    const f = facts();
    SLOTS.forEach((s, i) => marked(f, i));
    Object.assign(f.slots[1]!.host!, { guard: 'none' });
    f.recordedIds = Object.fromEntries(SLOTS.map((s, i) => [s, ID[i]!]));
    expect(planAdoption(f).slots.map((s) => s.writes)).toEqual([[], ['guard'], []]);
  });

  it('member names equal to the slot tags: the same mapping, no conflict', () => {
    const f = facts();
    if (f.etcd.readable) f.etcd = { ...f.etcd, members: f.etcd.members.map((m, i) => ({ ...m, name: SLOTS[i]! })) };
    expect(planAdoption(f).refusals).toEqual([]);
  });

  it('mappingChanges: a different member or instance is a change; what is left to write is not', () => {
    const before = planAdoption(facts());
    const f = facts();
    marked(f, 0);
    expect(mappingChanges(before, planAdoption(f))).toEqual([]);
    const g = facts();
    slot(g, 2).inService = ['i-0000000000000000d'];
    slot(g, 2).volumes = [{ volumeId: VOLUME[2]!, az: AZ[2]!, attachedTo: 'i-0000000000000000d' }];
    expect(mappingChanges(before, planAdoption(g))).toEqual([expect.stringMatching(/^etcd-c: instance i-0000000000000000c, .* → instance i-0000000000000000d, /)]);
  });
});

/** One change to the happy cluster, the refusal it must give (code, slot, and words of the reason). */
const ROWS: Array<[string, (f: AdoptionFacts) => void, RefusalCode, string | null, RegExp]> = [
  ['no master ASG tagged', (f) => { f.slots = []; }, 'no-slots', null, /no master Auto Scaling group is tagged for cluster prod/],
  ['an ASG with an invalid member tag', (f) => { f.badGroups = [{ asg: 'prod-master-x', memberTag: 'Etcd_X' }]; }, 'bad-group', null, /ASG prod-master-x .* not a valid member name \("Etcd_X"\)/],
  ['a slot with no InService instance', (f) => { slot(f, 0).inService = []; slot(f, 0).host = null; }, 'instances', 'etcd-a', /has no InService instance/],
  ['a slot with two InService instances', (f) => { slot(f, 0).inService = [INSTANCE[0]!, 'i-0000000000000000d']; slot(f, 0).host = null; }, 'instances', 'etcd-a', /has 2 InService instances/],
  ['a slot without a tagged volume', (f) => { slot(f, 1).volumes = []; hostOf(f, 1).inspect = null as unknown as Host['inspect']; }, 'volumes', 'etcd-b', /no volume is tagged prod\/etcd-b/],
  ['two volumes tagged for one slot', (f) => { slot(f, 1).volumes = [...slot(f, 1).volumes, { volumeId: 'vol-0000000000000000d', az: 'us-east-1d', attachedTo: null }]; hostOf(f, 1).inspect = null as unknown as Host['inspect']; }, 'volumes', 'etcd-b', /2 volumes are tagged prod\/etcd-b/],
  ['the volume in another AZ than the ASG', (f) => { slot(f, 2).volumes = [{ volumeId: VOLUME[2]!, az: 'us-east-1a', attachedTo: INSTANCE[2]! }]; }, 'volume-az', 'etcd-c', /is in us-east-1a, not in prod-master-us-east-1c's zone/],
  ['the volume attached to another instance', (f) => { slot(f, 2).volumes = [{ volumeId: VOLUME[2]!, az: AZ[2]!, attachedTo: INSTANCE[0]! }]; }, 'volume-attachment', 'etcd-c', /attached to i-0000000000000000a, not to etcd-c's master/],
  ['the volume attached to nothing', (f) => { slot(f, 2).volumes = [{ volumeId: VOLUME[2]!, az: AZ[2]!, attachedTo: null }]; }, 'volume-attachment', 'etcd-c', /attached to no instance/],
  ['the master cannot be asked (agent offline, no host.env)', (f) => { slot(f, 0).host = { problem: 'the SSM agent on i-0000000000000000a is not online' }; }, 'host', 'etcd-a', /could not be asked: the SSM agent/],
  ['etcd not run by the unit Quorum Keeper controls (a static pod)', (f) => { hostOf(f, 0).etcdRunning = false; }, 'etcd-unit', 'etcd-a', /etcd does not run on i-0000000000000000a as the systemd unit Quorum Keeper controls/],
  ['something else mounted at the mount point', (f) => { Object.assign(hostOf(f, 0).inspect, { onVolume: false, mountedDevice: '/dev/nvme2n1' }); }, 'not-mounted', 'etcd-a', /is not what is mounted at \/var\/lib\/etcd .*mounted there: \/dev\/nvme2n1/],
  ['no etcd data in <mount point>/data (the data dir is elsewhere)', (f) => { hostOf(f, 0).inspect.hasData = false; }, 'no-data', 'etcd-a', /no etcd data in \/var\/lib\/etcd\/data .* not on the tagged volume/],
  ['data on the volume that the running etcd does not use (its data dir is elsewhere)', (f) => { hostOf(f, 0).inspect.dbOpenByEtcd = false; }, 'data-dir', 'etcd-a', /does not use the data in \/var\/lib\/etcd\/data on vol-0000000000000000a: no etcd process holds/],
  ['not knowing whether the running etcd uses the data on the volume', (f) => { hostOf(f, 0).inspect.dbOpenByEtcd = null; }, 'data-dir', 'etcd-a', /could not tell whether the running etcd/],
  ['a marker naming another cluster', (f) => { hostOf(f, 1).inspect.marker = { cluster: 'staging', member: 'etcd-b', volume: VOLUME[1]!, memberId: '' }; }, 'marker', 'etcd-b', /names cluster=staging member=etcd-b, not prod\/etcd-b/],
  ['a marker naming another member', (f) => { hostOf(f, 1).inspect.marker = { cluster: 'prod', member: 'etcd-c', volume: VOLUME[1]!, memberId: '' }; }, 'marker', 'etcd-b', /names cluster=prod member=etcd-c/],
  ['a marker naming another volume (a copy)', (f) => { hostOf(f, 1).inspect.marker = { cluster: 'prod', member: 'etcd-b', volume: 'vol-0000000000000000e', memberId: ID[1]! }; }, 'marker', 'etcd-b', /names volume vol-0000000000000000e: this volume is a copy/],
  ['a marker naming no volume', (f) => { hostOf(f, 1).inspect.marker = { cluster: 'prod', member: 'etcd-b', volume: '', memberId: '' }; }, 'marker', 'etcd-b', /names no volume/],
  ['the member list unreadable', (f) => { f.etcd = { readable: false, why: 'no master\'s etcd answered' }; }, 'no-quorum', null, /member list could not be read/],
  ['a member list that is only one member\'s own view', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, linearizable: false }; }, 'no-quorum', null, /no leader/],
  ['no leader', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, leader: null, healthyVoters: 0 }; }, 'no-quorum', null, /no leader \(0\/3 healthy voters, quorum 2\)/],
  ['a leader without quorum', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, healthyVoters: 1 }; }, 'no-quorum', null, /no quorum \(1\/3/],
  ['a learner', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, members: [...f.etcd.members, { id: 'aaaa', name: '', peerUrls: ['https://10.0.4.1:2380'], isLearner: true }] }; }, 'learner', null, /\(aaaa\) is a learner/],
  ['no member at a slot\'s peer URL', (f) => { hostOf(f, 2).peerUrl = 'https://10.0.3.99:2380'; }, 'peer-url', 'etcd-c', /no etcd member has etcd-c's peer URL https:\/\/10\.0\.3\.99:2380/],
  ['two members listing one peer URL', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, members: f.etcd.members.map((m, i) => (i === 1 ? { ...m, peerUrls: [URL[1]!, URL[2]!] } : m)) }; }, 'peer-url', 'etcd-c', /2 etcd members list etcd-c's peer URL/],
  ['two masters advertising one peer URL', (f) => { hostOf(f, 2).peerUrl = URL[1]!; }, 'shared-member', null, /slots etcd-b, etcd-c all map to etcd member 91bc3c398fb3c146/],
  ['a member no slot maps to (a stray)', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, members: [...f.etcd.members, { id: 'bbbb', name: 'old-master', peerUrls: ['https://10.0.4.1:2380'], isLearner: false }] }; }, 'stray', null, /old-master \(bbbb, https:\/\/10\.0\.4\.1:2380\) belongs to no slot/],
  ['a member named like another slot\'s tag', (f) => { if (f.etcd.readable) f.etcd = { ...f.etcd, members: f.etcd.members.map((m, i) => (i === 0 ? { ...m, name: 'etcd-b' } : m)) }; }, 'name-conflict', 'etcd-b', /the etcd member named etcd-b is 8e9e05c52164694d, but etcd-b's master runs 91bc3c398fb3c146/],
  ['the state table recording another member for a slot', (f) => { f.recordedIds = { 'etcd-a': ID[1]! }; }, 'recorded-id', 'etcd-a', /records member 91bc3c398fb3c146 for etcd-a, but its master runs 8e9e05c52164694d/],
  ['the marker recording another member ID', (f) => { marked(f, 0, ID[2]); }, 'marker-id', 'etcd-a', /says it holds member fd422379fda50e48, but etcd-a's master runs 8e9e05c52164694d/],
  ['a formation record with another etcd cluster ID', (f) => { f.formation = { state: 'formed', clusterId: '1111', how: 'bootstrap', seed: 'etcd-a' }; }, 'formation', null, /formed with etcd cluster ID 1111, but its etcd runs cluster ID cdf818194e3a8c32/],
  ['a bootstrap seeding the cluster', (f) => { f.formation = { state: 'seeding', clusterId: null, how: 'bootstrap', seed: 'etcd-a' }; }, 'formation', null, /a bootstrap of prod is seeding it \(slot etcd-a\)/],
];

describe('planAdoption refuses, saying why and what to do', () => {
  it.each(ROWS)('%s', (_what, change, code, slotName, reason) => {
    const f = facts();
    change(f);
    const p = planAdoption(f);
    expect(p.refusals).toContainEqual({ code, slot: slotName, reason: expect.stringMatching(reason) as unknown, action: expect.stringMatching(/\S/) as unknown });
    // Nothing is planned to be written when anything is refused.
    expect(p.slots.every((s) => s.action === 'refused' && s.writes.length === 0)).toBe(true);
    expect(adopted(p)).toBe(false);
  });

  it('lists every reason at once', () => {
    const f = facts();
    slot(f, 0).inService = [];
    slot(f, 0).host = null;
    hostOf(f, 1).inspect.hasData = false;
    f.recordedIds = { 'etcd-c': ID[0]! };
    expect(planAdoption(f).refusals.map((r) => [r.code, r.slot])).toEqual([['instances', 'etcd-a'], ['no-data', 'etcd-b'], ['recorded-id', 'etcd-c']]);
  });

  it('a slot whose master did not answer makes no other member a stray', () => {
    const f = facts();
    slot(f, 2).host = { problem: 'agent offline' };
    expect(planAdoption(f).refusals.map((r) => r.code)).toEqual(['host']);
  });
});
