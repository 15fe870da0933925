/**
 * `quorum-keeper adopt` end to end in the sandbox (real etcd 3.5 with mutual TLS, real SDK
 * clients through the CLI's --endpoint, the host scripts over SSM): a cluster built by hand —
 * members named after their hosts, volumes mounted by hand without a marker, etcd run by the
 * host's own unit — is taken over; then a killed master is replaced by the usual flow and comes
 * back as the same member with its data, the continuous writer losing nothing.
 * One sandbox and one cluster for the file: the tests run in order, each from where the last left it.
 */
import { CreateTagsCommand, DeleteTagsCommand } from '@aws-sdk/client-ec2';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { sandboxCli } from '../support/cli';
import { adoptDeps } from '../../lib/compose';
import { adoptCluster, planAdoption } from '../../lib/flows/adopt';
import { findMasterSlot, type MasterSlot } from '../../lib/flows/master-slot';
import { replaceMaster } from '../../lib/flows/replacement';
import { EtcdError, memberIdFromHex } from '../../lib/etcd';
import { destroyClients, handBuildCluster, type SandboxClients, sandboxClients, type SandboxCluster, TAG_CLUSTER, TAG_MEMBER } from '../../sandbox/cluster';
import { type Control, destroyControl, provisionControl, receivedAlerts, sandboxFlowDeps, sandboxRoot } from '../../sandbox/control';
import { harnessEtcd } from '../../sandbox/etcd-http';
import { waitFor } from '../../sandbox/ports';
import { countKeys, killMaster, memberOf, putKeys } from '../../sandbox/scenario';
import { Sandbox } from '../../sandbox/sandbox';
import { writerKit } from '../support/writers';

jest.setTimeout(120_000);

const MARKER = '.quorum-keeper-volume';

describe('adopt: a hand-built cluster taken over, then a killed master replaced', () => {
  let sandbox: Sandbox;
  let c: SandboxClients;
  let ctl: Control;
  let cluster: SandboxCluster & { etcdNames: string[] };
  const writer = writerKit(() => sandbox);
  const t0 = Date.now();

  beforeAll(async () => {
    sandbox = await Sandbox.start();
    c = sandboxClients(sandbox);
    ctl = await provisionControl(sandbox);
    cluster = await handBuildCluster(sandbox, c, { name: 'prod' });
    await putKeys(cluster.members[1]!.clientUrl, '/registry/test/', 300);
  });
  afterAll(async () => {
    await writer.stopAll();
    writer.report();
    if (ctl) destroyControl(ctl);
    if (c) destroyClients(c);
    await sandbox?.stop();
    console.log(`adopt.test.ts: ${((Date.now() - t0) / 1000).toFixed(1)} s with the sandbox`);
  });

  const cli = sandboxCli(() => sandbox, () => ['--state-table', ctl.table]);
  const members = async () => (await harnessEtcd(cluster.members.map((m) => m.clientUrl)).memberList());
  const markerOf = (volumeId: string) => join(sandbox.volumeDir(volumeId), MARKER);
  const record = async (slot: string) => (await ctl.ddb.send(new GetItemCommand({ TableName: ctl.table, Key: { pk: { S: `member#prod/${slot}` } }, ConsistentRead: true }))).Item;
  const formation = async () => (await ctl.ddb.send(new GetItemCommand({ TableName: ctl.table, Key: { pk: { S: 'formed#prod' } }, ConsistentRead: true }))).Item;
  /** Nothing adopt writes is there: no marker on any volume, no record, no formation. */
  const expectUntouched = async () => {
    for (const m of cluster.members) expect(existsSync(markerOf(m.volumeId))).toBe(false);
    for (const m of cluster.members) expect(await record(m.name)).toBeUndefined();
    expect(await formation()).toBeUndefined();
  };

  it('the hand-built cluster: members named after hosts, no markers', async () => {
    const list = await members();
    expect(list.members.map((m) => m.name).sort()).toEqual([...cluster.etcdNames].sort());
    expect(cluster.etcdNames.some((n) => cluster.members.some((m) => m.name === n))).toBe(false);
    await expectUntouched();
  });

  it('refuses on ambiguity, saying why: a volume without its member tag; a member no master advertises', async () => {
    const cm = memberOf(cluster, 'etcd-c');
    await c.ec2.send(new DeleteTagsCommand({ Resources: [cm.volumeId], Tags: [{ Key: TAG_MEMBER }] }));
    try {
      const r = await cli(['adopt', '--cluster', 'prod', '--yes']);
      expect(r.code).toBe(3);
      console.log(`adopt, a volume untagged:\n${r.err}`);
      expect(r.err).toMatch(/refused: cluster prod cannot be adopted \(1 reason\):\n {2}- etcd-c: no volume is tagged prod\/etcd-c\n {4}what to do: Tag the EBS volume[^\n]*\nNothing was changed\./);
      await expectUntouched();
    } finally {
      await c.ec2.send(new CreateTagsCommand({ Resources: [cm.volumeId], Tags: [{ Key: TAG_MEMBER, Value: 'etcd-c' }] }));
    }

    // A voter added by hand (never started): no slot's master advertises its peer URL.
    const etcd = harnessEtcd(cluster.members.map((m) => m.clientUrl));
    // (etcd refuses reconfiguration for ~5 s after its members connect: "unhealthy cluster".)
    const added = await waitFor('a member added by hand', () => etcd.memberAdd('stray', ['https://127.0.0.1:1'], { learner: false }).catch((err: unknown) => {
      if (err instanceof EtcdError && err.kind === 'unhealthy-cluster') return undefined;
      throw err;
    }), { timeoutMs: 20_000, intervalMs: 500 });
    try {
      const r = await cli(['adopt', '--cluster', 'prod', '--dry-run', '--json']);
      expect(r.code).toBe(3);
      const json = JSON.parse(r.out) as { result: string; refusals: Array<{ code: string; reason: string }> };
      expect(json.result).toBe('refused');
      expect(json.refusals).toEqual([expect.objectContaining({ code: 'stray', reason: expect.stringContaining(`(${added.member.id}, https://127.0.0.1:1) belongs to no slot`) as unknown })]);
      await expectUntouched();
    } finally {
      await waitFor('the member added by hand removed', () => etcd.memberRemove(memberIdFromHex(added.member.id)).then(() => true), { timeoutMs: 20_000, intervalMs: 500 });
    }
  });

  it('refuses a master whose etcd is not running as its unit: nothing holds the data on its volume', async () => {
    const cm = memberOf(cluster, 'etcd-c');
    const host = sandbox.host(cm.instanceId);
    expect((await host.run(['systemctl stop etcd.service'], 30_000)).exitCode).toBe(0);
    try {
      const r = await cli(['adopt', '--cluster', 'prod', '--dry-run', '--json']);
      expect(r.code).toBe(3);
      const json = JSON.parse(r.out) as { refusals: Array<{ code: string; slot: string | null; reason: string }> };
      expect(json.refusals.map((x) => [x.code, x.slot])).toEqual([['etcd-unit', 'etcd-c'], ['data-dir', 'etcd-c']]);
      expect(json.refusals[1]!.reason).toMatch(/no etcd process holds its member\/snap\/db open/);
      await expectUntouched();
    } finally {
      expect((await host.run(['systemctl start --no-block etcd.service'], 30_000)).exitCode).toBe(0);
      await waitFor('etcd-c healthy again', async () => ((await harnessEtcd([cm.clientUrl]).endpointHealth({ cluster: false }).catch(() => []))[0]?.healthy ? true : undefined), { timeoutMs: 30_000, intervalMs: 250 });
    }
  });

  it('--dry-run prints the plan (each slot mapped by peer URL to its host-named member) and changes nothing; without a terminal or --yes it refuses; declined at the prompt, nothing either', async () => {
    const list = await members();
    const r = await cli(['adopt', '--cluster', 'prod', '--dry-run']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^ADOPTION PLAN for cluster prod \\(etcd cluster ID ${list.clusterId}\\)$`, 'm'));
    expect(r.out).toMatch(/^SLOT\s+INSTANCE\s+VOLUME\s+ETCD MEMBER\s+MEMBER ID\s+PEER URL\s+ACTION$/m);
    for (const [i, m] of cluster.members.entries()) {
      const id = list.members.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
      expect(r.out).toMatch(new RegExp(`^${m.name}\\s+${m.instanceId}\\s+${m.volumeId}\\s+${cluster.etcdNames[i]!.replace(/\./g, '\\.')}\\s+${id}\\s+${m.peerUrl.replace(/\./g, '\\.')}\\s+adopt \\(marker, member-id, record, guard\\)$`, 'm'));
    }
    expect(r.out).toMatch(/dry run: nothing was changed/);
    console.log(`adopt --dry-run:\n${r.out}`);
    await expectUntouched();

    const noTty = await cli(['adopt', '--cluster', 'prod']);
    expect(noTty.code).toBe(3);
    expect(noTty.err).toMatch(/refused: no terminal to confirm on: pass --yes/);
    const declined = await cli(['adopt', '--cluster', 'prod'], 'nope');
    expect(declined.code).toBe(4);
    expect(declined.err).toMatch(/ADOPTION PLAN for cluster prod/);
    expect(declined.out).toMatch(/aborted: nothing was changed/);
    await expectUntouched();

    const noTable = await sandboxCli(() => sandbox, () => [])(['adopt', '--cluster', 'prod']);
    expect(noTable.err).toMatch(/missing --state-table/);
    expect(noTable.code).toBe(2);
  });

  it('the flow re-reads under the locks: a plan the world no longer matches, or a slot another flow drives, is refused and nothing written', async () => {
    const deps = adoptDeps(sandboxRoot(c, ctl));
    const plan = await planAdoption(deps, 'prod');
    expect(plan.refusals).toEqual([]);
    // The plan shown said etcd-b's master advertises another URL than it does now.
    const stale = { ...plan, slots: plan.slots.map((s) => (s.slot === 'etcd-b' ? { ...s, peerUrl: 'https://127.0.0.1:1' } : s)) };
    await expect(adoptCluster(deps, 'prod', stale)).rejects.toMatchObject({
      name: 'AdoptRefused', refusals: [expect.objectContaining({ code: 'changed', reason: expect.stringMatching(/^the cluster changed since the plan was shown: etcd-b: .* at https:\/\/127\.0\.0\.1:1 → .* at https:\/\/127\.0\.0\.1:\d+$/) as unknown })],
    });
    await expectUntouched();
    // A replacement (or repair) holds etcd-c's slot lock.
    expect(await ctl.lock.tryAcquire('prod/etcd-c', 'a-replacement')).toBe(true);
    try {
      await expect(adoptCluster(deps, 'prod', plan)).rejects.toMatchObject({ name: 'AdoptRefused', refusals: [expect.objectContaining({ code: 'busy', slot: 'etcd-c' })] });
    } finally {
      await ctl.lock.release('prod/etcd-c', 'a-replacement');
    }
    await expectUntouched();
  });

  it('adopt (the cluster name typed back): markers name cluster, member, volume and member ID; the state table maps every slot; the cluster is recorded formed', async () => {
    const list = await members();
    const r = await cli(['adopt', '--cluster', 'prod'], 'prod');
    expect(r.err).toMatch(/✓ re-read: under the cluster lock/);
    expect(r.err).toMatch(/✓ verify: every slot adopted/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^adopted prod in \d+\.\d s \(etcd cluster ID [0-9a-f]+\):/);
    for (const m of cluster.members) {
      const id = list.members.find((x) => x.peerUrls.includes(m.peerUrl))!.id;
      expect(readFileSync(markerOf(m.volumeId), 'utf8').trim().split('\n').sort()).toEqual([`cluster=prod`, `member=${m.name}`, `memberId=${id}`, `volume=${m.volumeId}`]);
      const item = await record(m.name);
      expect(item?.memberId?.S).toBe(id);
      expect(item?.how?.S).toMatch(/^adopt: ip-10-0-\d-\d+\.ec2\.internal at https:/);
      expect(await sandboxFlowDeps(c, ctl).memberIds.get('prod', [m.name])).toEqual({ [m.name]: id });
      // The boot guard alone on etcd's unit: etcd starts at boot only on the verified volume; the
      // unit's ExecStart stays the one the cluster was built with.
      const guard = readFileSync(join(sandbox.host(m.instanceId).root, 'etc/systemd/system/etcd.service.d/10-quorum-keeper.conf'), 'utf8');
      expect(guard).toContain(`ConditionPathExists=/var/lib/etcd/${MARKER}`);
      expect(guard).not.toContain('ExecStart');
    }
    const f = await formation();
    expect({ state: f?.state?.S, clusterId: f?.clusterId?.S, how: f?.how?.S, seed: f?.seed?.S }).toEqual({ state: 'formed', clusterId: list.clusterId, how: 'adopt', seed: 'adopt' });
    // etcd was not touched: the same members, the same names, the same URLs.
    expect((await members()).members).toEqual(list.members);
  });

  it('a second adopt finds everything adopted and changes nothing', async () => {
    const stamp = () => cluster.members.map((m) => `${statSync(markerOf(m.volumeId)).mtimeMs}:${readFileSync(markerOf(m.volumeId), 'utf8')}`);
    const before = stamp();
    const records = await Promise.all(cluster.members.map((m) => record(m.name)));
    const formed = await formation();
    const r = await cli(['adopt', '--cluster', 'prod', '--yes', '--json']);
    expect(r.code).toBe(0);
    const json = JSON.parse(r.out) as { result: string; wrote: string[]; plan: { formation: string; slots: Array<{ action: string }> } };
    expect(json).toMatchObject({ result: 'unchanged', wrote: [], plan: { formation: 'already' } });
    expect(json.plan.slots.map((s) => s.action)).toEqual(['already', 'already', 'already']);
    expect(stamp()).toEqual(before);
    expect(await Promise.all(cluster.members.map((m) => record(m.name)))).toEqual(records);
    expect(await formation()).toEqual(formed);
  });

  it('after adopting, a killed master is replaced by the usual flow: same member ID at its new peer URL, data intact, 0 acknowledged writes lost', async () => {
    const a = memberOf(cluster, 'etcd-a');
    const before = (await members()).members.find((m) => m.peerUrls.includes(a.peerUrl))!;
    expect(before.name).toBe(cluster.etcdNames[0]);
    const w = writer.start('adopted');
    const { instanceId, event } = await killMaster(sandbox, c, a);
    const found = await findMasterSlot(c.asg, a.asg, { cluster: TAG_CLUSTER, member: TAG_MEMBER });
    if (found.kind !== 'master') throw new Error(found.reason);
    const slot: MasterSlot = found.slot;
    const hook = { asg: event.detail.AutoScalingGroupName, hook: event.detail.LifecycleHookName, token: event.detail.LifecycleActionToken, instanceId: event.detail.EC2InstanceId };
    const steps: string[] = [];
    const out = await replaceMaster(sandboxFlowDeps(c, ctl, (e) => { if (e.status !== 'start') steps.push(`${e.step}:${e.status} ${e.detail}`); }), { slot, instanceId, hook });
    const host = sandbox.host(instanceId);
    if (out.result !== 'continued') {
      const log = join(host.root, 'var/log/quorum-keeper/etcd.service.log');
      console.log(`replacement ${out.result}: steps\n  ${steps.join('\n  ')}\netcd log on ${instanceId}:\n${existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '(none)'}`);
    }
    expect(out).toEqual({ result: 'continued', membership: 'update' });
    const after = (await harnessEtcd([...cluster.members.filter((m) => m.name !== 'etcd-a').map((m) => m.clientUrl), host.clientUrl]).memberList()).members;
    expect(after).toHaveLength(3);
    expect(after.find((m) => m.id === before.id)).toMatchObject({ name: before.name, peerUrls: [host.peerUrl], isLearner: false });
    expect(await countKeys(host.clientUrl, '/registry/test/')).toBe(300);
    expect(readFileSync(markerOf(a.volumeId), 'utf8')).toMatch(new RegExp(`^memberId=${before.id}$`, 'm'));
    expect(sandbox.lifecycle.results(instanceId)).toEqual(['CONTINUE']);
    expect(await receivedAlerts(ctl)).toEqual([]);
    console.log(`replacement of an adopted master:\n  ${steps.join('\n  ')}`);
    await writer.check(w, 'adopted cluster: etcd-a killed and replaced');
  });
});
