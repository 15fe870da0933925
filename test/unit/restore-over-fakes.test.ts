/**
 * The restore's plan and refusals over in-memory ports (test/support/fake-cloud.ts), without moto
 * or etcd: a restore runs only on a cluster Quorum Keeper can SEE has lost quorum — judged by the
 * one quorum rule over the one view, the masters' own word included — and is refused, with
 * nothing stopped anywhere, otherwise.
 */
import type { BackupMeta } from '../../lib/aws/backups';
import { restoreCluster, RestoreRefused, type RestoreRequest } from '../../lib/flows/restore';
import type { RestoreDeps } from '../../lib/flows/restore/plan';
import { fakeFlowDeps } from '../support/fake-cloud';
import { fakeHosts, type FakeWorld, healthyWorld, hostReport, NOW } from '../support/fake-world';

const STORE = { bucket: 'b', prefix: 'etcd-backups' };
const KEY = 'etcd-backups/prod/2026-12-07T11-50-00Z-etcd-b.db.zst';
const META: BackupMeta = {
  cluster: 'prod', member: 'etcd-b', revision: 5, keys: 10, etcdVersion: '3.5.16', rawSize: 4096, size: 1, sha256: 'a'.repeat(64), compressor: 'zstd', takenAt: new Date(NOW - 600_000),
};

/** No member answers; each master's own word as given (absent: its agent is offline). */
function silent(word: Record<string, { running: boolean } | null>): FakeWorld {
  const w = healthyWorld();
  w.etcd = { ...w.etcd, via: null, members: null, clusterId: null, membersFrom: null, status: { statuses: [], unreachable: [] } };
  w.hosts = {};
  for (const [i, st] of Object.entries(word)) if (st) w.hosts[i] = hostReport(i.slice(2), st);
  return w;
}

async function restore(w: FakeWorld, o: { confirm?: boolean } = {}) {
  const hosts = fakeHosts({ 'restore-preflight': () => ({ ready: true, problems: [], canBump: true }) });
  const f = fakeFlowDeps(w, hosts);
  f.cloud.stored.set(KEY, { key: KEY, size: 1, encryption: 'aws:kms', kmsKeyId: 'k', checksumSha256: 'x', meta: META });
  const deps: RestoreDeps = f.deps;
  const asked: string[] = [];
  const req: RestoreRequest = { cluster: 'prod', snapshot: 'latest', store: STORE, workDir: '/var/lib/quorum-keeper/restore', force: false, confirm: (p) => Promise.resolve(void asked.push(p.health)).then(() => o.confirm ?? false) };
  const out = await restoreCluster(deps, req).catch((err: unknown) => err);
  return { out, asked, hosts, changes: f.cloud.changes };
}

const stopped = (hosts: { calls: Array<{ command: { kind: string } }> }) => hosts.calls.filter((c) => c.command.kind === 'member-stop');

describe('the restore over fakes: only a cluster seen to have lost quorum', () => {
  it('a quorate cluster is refused without --force: nothing stopped, the operator never asked', async () => {
    const { out, asked, hosts } = await restore(healthyWorld());
    expect(out).toBeInstanceOf(RestoreRefused);
    expect((out as Error).message).toMatch(/still has quorum .*would discard every write since/);
    expect(asked).toEqual([]);
    expect(stopped(hosts)).toEqual([]);
  });

  it('every master says etcd is stopped there: lost — the plan goes to the operator (declined here: aborted, nothing changed)', async () => {
    const { out, asked, hosts, changes } = await restore(silent({ 'i-a': { running: false }, 'i-b': { running: false }, 'i-c': { running: false } }));
    expect(out).toMatchObject({ result: 'aborted', plan: { quorum: 'lost', snapshot: { key: KEY } } });
    expect(asked).toEqual([expect.stringMatching(/etcd runs on none of the 3 masters/)]);
    expect(stopped(hosts)).toEqual([]);
    expect(changes).toEqual([]);
  });

  it('one master\'s etcd runs but answers nobody: CANNOT SEE — refused, never restored', async () => {
    const { out, asked } = await restore(silent({ 'i-a': { running: false }, 'i-b': { running: false }, 'i-c': { running: true } }));
    expect(out).toBeInstanceOf(RestoreRefused);
    expect((out as Error).message).toMatch(/CANNOT SEE whether prod has quorum.*Quorum Keeper restores only a cluster it can see has lost quorum/s);
    expect(asked).toEqual([]);
  });

  it('a master that cannot be asked (its SSM agent offline) is refused by name: its URLs and its etcd are unknown', async () => {
    const { out } = await restore(silent({ 'i-a': { running: false }, 'i-b': null, 'i-c': { running: false } }));
    expect(out).toBeInstanceOf(RestoreRefused);
    expect((out as Error).message).toBe('etcd-b (i-b) could not be asked: its SSM agent is not online');
  });

  it('a slot without an InService master is refused: every master must be back first', async () => {
    const w = silent({ 'i-a': { running: false }, 'i-c': { running: false } });
    w.slots[1] = { ...w.slots[1]!, instanceId: null, instances: [] };
    const { out } = await restore(w);
    expect((out as Error).message).toMatch(/^slot\(s\) etcd-b have no InService instance/);
  });
});
