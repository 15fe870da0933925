/**
 * `quorum-keeper doctor`: gathers everything Quorum Keeper relies on as plain facts, then the
 * pure `judge` (lib/domain/doctor.ts) turns them into pass / warn / fail / skip checks with fixes.
 * Read-only: describe calls, and on each master whose SSM agent is online two read-only host
 * scripts side by side (`etcd-member.sh status`: host.env, this host's URLs and etcd, its member's
 * health over its own TLS settings; `etcd-mount.sh --inspect`: the volume's device, what is
 * mounted, the marker), plus one survey of the cluster through the first master that answers.
 */
import { type DoctorReadClients, errorText, readAsgs, readBackup, readInstances, readStack, readTargetGroups, readVolumes } from '../../aws/doctor-read';
import { type Clock, wallNow } from '../../clock';
import {
  type Check, type DoctorFacts, type DoctorSummary, type EtcdFacts, type HostFacts, type HostStatusFacts, type InspectFacts, judge, masterSlots, summarise, type VolumeFacts,
} from '../../domain/doctor';
import { type HostAnswer, type HostCallOptions, type HostCommand, HostFailure, type Hosts } from '../../host/commands';
import { hostRunOpts, type HostFlowDeps } from '../deps';
import type { ObservePorts } from '../../observe/ports';

export interface DoctorDeps extends DoctorReadClients {
  /** The member IDs recorded per slot (absent: no state table). */
  recordedIds?: (cluster: string, slots: readonly string[]) => Promise<Record<string, string>>;
  /** etcd as the observation reads it (the survey, certificates included). */
  etcd: ObservePorts['etcd'];
  hosts: Hosts;
  clock: Clock;
  tags: { cluster: string; member: string };
  timings: HostFlowDeps['timings'];
  signal?: AbortSignal;
}

export interface DoctorOptions {
  /** The backup bucket (and --kms-key-id): checked only when given. */
  bucket?: string;
  kmsKeyId?: string;
  /** The deployed stack: its functions and rules are checked only when given. */
  stack?: string;
}

export interface DoctorReport {
  cluster: string;
  at: string;
  /** No check failed (warnings allowed). */
  ok: boolean;
  summary: DoctorSummary;
  checks: Check[];
}

// --- host facts --------------------------------------------------------------------------------

/** A host command's answer, or its failure as text (the script's own last line of stderr says why). */
async function ask<C extends HostCommand>(d: DoctorDeps, instanceId: string, command: C, opts: HostCallOptions): Promise<{ ok: true; value: HostAnswer<C['kind']> } | { ok: false; error: string }> {
  try {
    return { ok: true, value: await d.hosts.run(instanceId, command, opts) };
  } catch (err) {
    return { ok: false, error: err instanceof HostFailure ? `${err.command}: ${err.kind === 'unfinished' ? 'did not finish' : err.exitCode !== null && err.exitCode >= 0 ? `exit ${err.exitCode}` : err.kind}: ${err.detail || 'no error output'}` : errorText(err) };
  }
}

async function readHost(d: DoctorDeps, cluster: string, member: string, instanceId: string, volume: VolumeFacts | null, opts: HostCallOptions): Promise<HostFacts> {
  // The device hint only for the volume EC2 says is attached here: another volume at that name is not this one.
  const device = volume && volume.attachedTo === instanceId && volume.device && /^\/dev\/(xvd|sd)[a-z]{1,2}$/.test(volume.device) ? { device: volume.device } : {};
  const [status, inspect] = await Promise.all([
    ask(d, instanceId, { kind: 'member-status' }, opts),
    volume ? ask(d, instanceId, { kind: 'volume-inspect', volumeId: volume.volumeId, cluster, member, ...device }, opts) : Promise.resolve(null),
  ]);
  const st: HostStatusFacts = status.ok
    ? { ok: true, ...pick(status.value, 'peerUrl', 'clientUrl', 'running', 'healthy', 'etcdVersion', 'serverVersion', 'clusterVersion', 'guard') }
    : status;
  const ins: InspectFacts | null = inspect === null ? null : inspect.ok
    ? { ok: true, ...pick(inspect.value, 'volumeId', 'device', 'mountedDevice', 'onVolume', 'mountPoint', 'dataDir', 'hasData'), marker: inspect.value.marker && { ...inspect.value.marker } }
    : inspect;
  return { instanceId, status: st, inspect: ins };
}

function pick<T extends object, K extends keyof T>(o: T, ...keys: K[]): Pick<T, K> {
  return Object.fromEntries(keys.map((k) => [k, o[k]])) as Pick<T, K>;
}

async function readEtcd(d: DoctorDeps, candidates: Array<{ instanceId: string; member: string }>, opts: HostCallOptions): Promise<EtcdFacts> {
  const e = await d.etcd.survey(candidates, { certs: true }, opts.abortSignal ? { signal: opts.abortSignal } : {});
  const members = e.members ?? [];
  return {
    via: e.members ? e.via?.member ?? null : null, quorum: e.membersFrom === 'quorum', tried: e.tried,
    members: members.map((m) => ({ id: m.id, name: m.name, peerUrls: m.peerUrls, clientUrls: m.clientUrls, isLearner: m.isLearner })),
    statuses: e.status.statuses.map((s) => ({ memberId: s.memberId, endpoint: s.endpoint, version: s.version, isLeader: s.isLeader })),
    unreachable: e.status.unreachable,
    clusterVersion: e.clusterVersion,
    certs: e.certs.length ? e.certs : null,
    errors: e.errors,
  };
}

// --- backups and the stack (optional) ----------------------------------------------------------

// --- the flow ----------------------------------------------------------------------------------

export async function gatherDoctorFacts(d: DoctorDeps, cluster: string, o: DoctorOptions = {}): Promise<DoctorFacts> {
  const opts = hostRunOpts(d, 60);
  // Everything that needs nothing else starts at once; the host commands start as soon as the
  // slots (and, for the volume inspection, the volumes) are known.
  const volumesP = readVolumes(d, cluster);
  const restP = Promise.all([
    readTargetGroups(d, cluster), o.bucket ? readBackup(d, o.bucket, o.kmsKeyId) : Promise.resolve(null), o.stack ? readStack(d, o.stack) : Promise.resolve(null),
  ]);
  volumesP.catch(() => undefined);
  restP.catch(() => undefined);
  const asgs = await readAsgs(d, cluster);
  const slots = masterSlots(asgs);
  const withInstance = slots.filter((s) => s.instanceId).map((s) => ({ member: s.member, instanceId: s.instanceId! }));
  const etcdP = readEtcd(d, withInstance, opts);
  etcdP.catch(() => undefined);
  const [instances, recordedIds, volumes] = await Promise.all([
    readInstances(d, withInstance.map((s) => s.instanceId)),
    d.recordedIds ? d.recordedIds(cluster, slots.map((s) => s.member)) : Promise.resolve(null),
    volumesP,
  ]);
  const online = withInstance.filter((s) => instances[s.instanceId]?.agent === 'Online');
  const hosts: Record<string, HostFacts> = {};
  await Promise.all(online.map(async (s) => {
    const mine = volumes.filter((v) => v.memberTag === s.member);
    hosts[s.member] = await readHost(d, cluster, s.member, s.instanceId, mine.length === 1 ? mine[0]! : null, opts);
  }));
  const [etcd, [targetGroups, backup, stack]] = await Promise.all([etcdP, restP]);
  return {
    cluster, tags: { cluster: d.tags.cluster, member: d.tags.member }, now: await wallNow(d.clock),
    asgs, volumes, targetGroups, instances, hosts, etcd, recordedIds, backup, stack,
  };
}

/** The checks, judged from the facts gathered now. */
export async function doctor(d: DoctorDeps, cluster: string, o: DoctorOptions = {}): Promise<DoctorReport> {
  const facts = await gatherDoctorFacts(d, cluster, o);
  const checks = judge(facts);
  const summary = summarise(checks);
  return { cluster, at: new Date(facts.now).toISOString(), ok: summary.fail === 0, summary, checks };
}
