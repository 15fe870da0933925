/**
 * `quorum-keeper doctor`: gathers everything Quorum Keeper relies on as plain facts, then the
 * pure `judge` (lib/domain/doctor.ts) turns them into pass / warn / fail / skip checks with fixes.
 * Read-only: describe calls, and on each master whose SSM agent is online two read-only host
 * scripts side by side (`etcd-member.sh status`: host.env, this host's URLs and etcd, its member's
 * health over its own TLS settings; `etcd-mount.sh --inspect`: the volume's device, what is
 * mounted, the marker), plus one survey of the cluster through the first master that answers.
 */
import { z } from 'zod';
import { type DoctorReadClients, errorText, readAsgs, readBackup, readInstances, readStack, readTargetGroups, readVolumes } from '../../aws/doctor-read';
import { lastLine, outputTruncated, runHostScript, type RunOptions } from '../../aws/run-command';
import { type Clock, wallNow } from '../../clock';
import {
  type Check, type DoctorFacts, type DoctorSummary, type EtcdFacts, type HostFacts, type HostStatusFacts, type InspectFacts, judge, masterSlots, summarise, type VolumeFacts,
} from '../../domain/doctor';
import type { HostScriptBundle } from '../../host/command';
import { hostRunOpts, type HostFlowDeps } from '../deps';
import type { ObservePorts } from '../../observe/ports';

export interface DoctorDeps extends DoctorReadClients {
  /** The member IDs recorded per slot (absent: no state table). */
  recordedIds?: (cluster: string, slots: readonly string[]) => Promise<Record<string, string>>;
  /** etcd as the observation reads it (the survey, certificates included). */
  etcd: ObservePorts['etcd'];
  scripts: HostScriptBundle;
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

const statusSchema = z.object({
  running: z.boolean(), healthy: z.boolean(), peerUrl: z.string(), clientUrl: z.string(),
  etcdVersion: z.string().nullable().default(null), serverVersion: z.string().nullable().default(null), clusterVersion: z.string().nullable().default(null),
});
const inspectSchema = z.object({
  result: z.literal('inspected'), volumeId: z.string(), device: z.string().nullable(), mountedDevice: z.string().nullable(), onVolume: z.boolean(),
  mountPoint: z.string(), dataDir: z.string(), hasData: z.boolean(),
  marker: z.object({ cluster: z.string(), member: z.string(), volume: z.string(), memberId: z.string() }).nullable(),
});

/** A host script's one-line JSON answer, parsed; its failure as text (the script's own stderr says why). */
async function hostJson<T>(d: DoctorDeps, instanceId: string, script: 'etcd-member.sh' | 'etcd-mount.sh', args: string[], schema: z.ZodType<T>, opts: RunOptions): Promise<{ ok: true; value: T } | { ok: false; error: string }> {
  try {
    const res = await runHostScript(d.ssm, d.scripts, instanceId, script, args, opts);
    if (res.exitCode !== 0) return { ok: false, error: `${script} ${args[0]} ${res.exitCode === -1 ? `did not finish (SSM ${res.status})` : `exit ${res.exitCode}`}: ${lastLine(res.stderr) || 'no error output'}` };
    if (outputTruncated(res)) return { ok: false, error: `${script} ${args[0]}: answer truncated by SSM` };
    return { ok: true, value: schema.parse(JSON.parse(lastLine(res.stdout))) };
  } catch (err) {
    return { ok: false, error: `${script} ${args[0]}: ${errorText(err)}` };
  }
}

async function readHost(d: DoctorDeps, cluster: string, member: string, instanceId: string, volume: VolumeFacts | null, opts: RunOptions): Promise<HostFacts> {
  // The device hint only for the volume EC2 says is attached here: another volume at that name is not this one.
  const device = volume && volume.attachedTo === instanceId && volume.device && /^\/dev\/(xvd|sd)[a-z]{1,2}$/.test(volume.device) ? ['--device', volume.device] : [];
  const [status, inspect] = await Promise.all([
    hostJson(d, instanceId, 'etcd-member.sh', ['status'], statusSchema, opts),
    volume ? hostJson(d, instanceId, 'etcd-mount.sh', ['--inspect', '--volume-id', volume.volumeId, '--cluster', cluster, '--member', member, ...device], inspectSchema, opts) : Promise.resolve(null),
  ]);
  const st: HostStatusFacts = status.ok ? { ok: true, ...status.value } : status;
  const ins: InspectFacts | null = inspect === null ? null : inspect.ok
    ? { ok: true, ...inspect.value, marker: inspect.value.marker && { ...inspect.value.marker } }
    : inspect;
  return { instanceId, status: st, inspect: ins };
}

async function readEtcd(d: DoctorDeps, candidates: Array<{ instanceId: string; member: string }>, opts: RunOptions): Promise<EtcdFacts> {
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
