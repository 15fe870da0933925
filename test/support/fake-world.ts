/**
 * An in-memory world behind the observation's ports (lib/observe/ports.ts): slots, volumes,
 * target health, what etcd answers, backups and the state table's records, with every read
 * counted. Unit tests judge views of it without the sandbox.
 */
import type { BackupObject } from '../../lib/aws/backups';
import type { Clock } from '../../lib/clock';
import type { EtcdView, HostReport, SlotView } from '../../lib/domain/view';
import type { EndpointStatus, Member, MemberId } from '../../lib/etcd';
import { memberIdFromHex } from '../../lib/etcd';
import type { ObservePorts, TaggedVolumeFact } from '../../lib/observe/ports';
import { type HostAnswer, type HostCommand, type HostCommandKind, HostFailure, type Hosts } from '../../lib/host/commands';

export const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);

/** A clock standing at `at` (the world's time). */
export const fixedClock = (at = NOW): Clock => ({ now: () => at, sleep: () => Promise.resolve() });

export interface FakeWorld {
  slots: SlotView[];
  volumes: TaggedVolumeFact[];
  targets: Record<string, string> | null;
  etcd: EtcdView;
  /** The peer URL each instance's etcd advertises. */
  peerUrls: Record<string, string>;
  instances: Record<string, { state: string; launchedAt: number | null }>;
  backups: BackupObject[] | Error;
  memberIds: Record<string, string>;
  held: Record<string, { instanceId: string; since: number; reason: string }>;
  awaitingDr: Record<string, { instanceId: string; since: number; hasData: boolean }>;
  /** The highest revision a probe remembers (null: none). */
  highestRevision?: number | null;
  /** What each master says of its etcd, by instance ID (absent: its SSM agent is offline; an Error: the command failed). */
  hosts: Record<string, HostReport | Error>;
  /** No state table: the records port is absent. */
  noStateTable?: boolean;
  now: number;
}

export const hexId = (h: string) => memberIdFromHex(h);

export function member(h: string, name: string, extra: Partial<Member> = {}): Member {
  return { id: hexId(h), name, peerUrls: [`https://${h}:2380`], clientUrls: [`https://${h}:2379`], isLearner: false, started: true, ...extra };
}

/** Member `h`'s status: following `leader` (null: no leader). */
export function status(h: string, leader: string | null, extra: Partial<EndpointStatus> = {}): EndpointStatus {
  return {
    endpoint: `https://${h}:2379`, memberId: hexId(h), clusterId: hexId('1'), version: '3.5.16', dbSize: 1, dbSizeInUse: 1, leader: leader ? hexId(leader) : null,
    isLeader: leader === h, isLearner: false, raftIndex: 100, raftAppliedIndex: 100, raftTerm: 2, revision: 5, errors: leader ? [] : ['etcdserver: no leader'], ...extra,
  };
}

/** A healthy three-master cluster: slots etcd-a/b/c on i-a/b/c, members a/b/c (a leads), volumes attached, targets healthy, one fresh backup. */
export function healthyWorld(): FakeWorld {
  const names = ['a', 'b', 'c'];
  return {
    slots: names.map((h) => ({ member: `etcd-${h}`, asg: `prod-etcd-${h}`, availabilityZones: [`us-east-1${h}`], instanceId: `i-${h}`, instances: [{ instanceId: `i-${h}`, lifecycleState: 'InService' }] })),
    volumes: names.map((h) => ({ volumeId: `vol-${h}`, az: `us-east-1${h}`, memberTag: `etcd-${h}`, device: '/dev/xvdf', state: 'in-use', attachedTo: `i-${h}`, attachmentState: 'attached' })),
    targets: Object.fromEntries(names.map((h) => [`i-${h}`, 'healthy'])),
    etcd: {
      via: { member: 'etcd-a', instanceId: 'i-a', clientUrl: 'https://a:2379', peerUrl: 'https://a:2380' },
      members: names.map((h) => member(h, `etcd-${h}`)), clusterId: hexId('1'), membersFrom: 'quorum',
      status: { statuses: names.map((h) => status(h, 'a')), unreachable: [] },
      clusterVersion: '3.5.0', alarms: [], leases: {}, certs: [], tried: [], errors: [],
    },
    peerUrls: Object.fromEntries(names.map((h) => [`i-${h}`, `https://${h}:2380`])),
    instances: Object.fromEntries(names.map((h) => [`i-${h}`, { state: 'running', launchedAt: NOW - 86_400_000 }])),
    backups: [{
      key: 'etcd-backups/prod/2026-12-07T11-50-00Z-etcd-b.db.zst', cluster: 'prod', member: 'etcd-b', takenAt: new Date(NOW - 600_000), compressor: 'zstd', size: 1,
      lastModified: new Date(NOW - 590_000), futureDated: false,
    }],
    memberIds: {}, held: {}, awaitingDr: {}, now: NOW,
    hosts: Object.fromEntries(names.map((h) => [`i-${h}`, hostReport(h, { running: true })])),
  };
}

/** What the master of member `h` says: etcd stopped (known) unless `running`, with data, no offline revision. */
export function hostReport(h: string, o: Partial<HostReport> = {}): HostReport {
  const running = o.running ?? false;
  return { running, stopped: !running, hasData: true, peerUrl: `https://${h}:2380`, clientUrl: `https://${h}:2379`, revision: null, ...o };
}

/** Ports over `w`; `reads` counts each source read. */
export function fakePorts(w: FakeWorld): ObservePorts & { reads: Record<string, number>; asked: Array<{ instanceId: string; offlineRevision: boolean }> } {
  const reads: Record<string, number> = {};
  const asked: Array<{ instanceId: string; offlineRevision: boolean }> = [];
  /** An answer, as a port gives one: later, and counted. */
  const answer = <T>(what: string, fn: () => T): Promise<T> => Promise.resolve().then(() => {
    reads[what] = (reads[what] ?? 0) + 1;
    return fn();
  });
  return {
    reads,
    asked,
    fleet: {
      masterGroups: () => answer('fleet', () => ({ masters: structuredClone(w.slots), bad: [] })),
    },
    instances: { states: (ids) => answer('instances', () => Object.fromEntries(ids.map((id) => [id, w.instances[id] ?? { state: 'terminated', launchedAt: null }]))) },
    volumes: { ofCluster: () => answer('volumes', () => structuredClone(w.volumes)) },
    targets: { health: () => answer('targets', () => w.targets && { ...w.targets }) },
    etcd: {
      // Only the master the world's etcd answers through can answer.
      survey: (candidates) => answer('etcd', (): EtcdView => (w.etcd.via && candidates.some((c) => c.instanceId === w.etcd.via!.instanceId)
        ? structuredClone(w.etcd) : { ...structuredClone(w.etcd), via: null, members: null, clusterId: null, membersFrom: null })),
      peerUrlOf: (instanceId) => answer('peerUrl', () => w.peerUrls[instanceId]),
      membership: (instanceId) => answer('membership', () => {
        if (!w.etcd.via || w.etcd.via.instanceId !== instanceId || !w.etcd.members || !w.etcd.clusterId) throw new Error(`fake etcd: no member list through ${instanceId}`);
        return { members: { clusterId: w.etcd.clusterId as MemberId, respondingMemberId: w.etcd.members[0]!.id, raftTerm: 2, members: structuredClone(w.etcd.members) }, status: structuredClone(w.etcd.status) };
      }),
    },
    backups: {
      list: () => answer('backups', () => {
        if (w.backups instanceof Error) throw w.backups;
        return [...w.backups];
      }),
    },
    hosts: {
      // As the AWS adapter: the offline revision only where etcd is down on data.
      report: (instanceId, read) => answer('hosts', () => {
        asked.push({ instanceId, offlineRevision: read.offlineRevision });
        const r = w.hosts[instanceId];
        if (r instanceof Error) throw r;
        return r ? { ...r, revision: read.offlineRevision && !r.running && r.hasData ? r.revision : null } : null;
      }),
    },
    ...(w.noStateTable ? {} : {
      records: {
        memberIds: () => answer('memberIds', () => ({ ...w.memberIds })),
        held: (_c, m) => answer('held', () => w.held[m] ?? null),
        awaitingDr: (_c, m) => answer('awaitingDr', () => w.awaitingDr[m] ?? null),
        highestRevision: () => answer('highestRevision', () => w.highestRevision ?? null),
      },
    }),
  };
}

/** What a fake host answers per command kind: the answer, or the failure the script's exit code would give. */
export type HostScript = { [K in HostCommandKind]?: (instanceId: string, command: Extract<HostCommand, { kind: K }>) => HostAnswer<K> | HostFailure };

/**
 * The host port over `script`; every command run is recorded, and one without a handler fails the
 * test. `offline`: masters whose agent is not online. etcdctl is not scripted here (fails).
 */
export function fakeHosts(script: HostScript, offline: readonly string[] = []): Hosts & { calls: Array<{ instanceId: string; command: HostCommand }> } {
  const calls: Array<{ instanceId: string; command: HostCommand }> = [];
  return {
    calls,
    online: (instanceId) => Promise.resolve(!offline.includes(instanceId)),
    etcdctl: (instanceId) => () => Promise.reject(new Error(`fake host: no etcdctl on ${instanceId}`)),
    run<C extends HostCommand>(instanceId: string, command: C): Promise<HostAnswer<C['kind']>> {
      calls.push({ instanceId, command });
      const handler = script[command.kind] as ((i: string, c: C) => HostAnswer<C['kind']> | HostFailure) | undefined;
      if (!handler) return Promise.reject(new Error(`fake host: no answer for ${command.kind} on ${instanceId}`));
      return Promise.resolve().then(() => {
        const out = handler(instanceId, command);
        if (out instanceof HostFailure) throw out;
        return out;
      });
    },
  };
}
