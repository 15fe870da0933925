/**
 * The backup flow over in-memory ports and a fake host (test/support/fake-world.ts), without moto
 * or etcd: how each host failure is told apart — by the script's exit code (the HostFailure's
 * kind), never by the words on its stderr — and what the run then reports, alerts and discards.
 */
import type { Alert } from '../../lib/aws/alerts';
import { DEFAULT_RETENTION } from '../../lib/domain/retention';
import { backupCluster, type BackupSettings } from '../../lib/flows/backup';
import { type HostAnswer, HostFailure } from '../../lib/host/commands';
import { fakeCloud } from '../support/fake-cloud';
import { fakeHosts, fakePorts, fixedClock, healthyWorld, type HostScript } from '../support/fake-world';

const TIMINGS = { minDelaySec: 0.01, maxDelaySec: 0.01, commandMinDelaySec: 0.01, commandMaxDelaySec: 0.01 };
const SETTINGS: BackupSettings = { store: { bucket: 'b', prefix: 'etcd-backups' }, workDir: '/var/lib/quorum-keeper/snapshots', compressor: 'auto', retention: DEFAULT_RETENTION, staleAfterSec: 3600 };
const FILE = 'snapshot-20261207T120000Z.db.zst';
const PREPARED: HostAnswer<'snapshot-prepare'> = {
  result: 'prepared', file: FILE, compressor: 'zstd', rawSize: 4096, size: 1024, sha256: 'a'.repeat(64), sha256Base64: `${'A'.repeat(43)}=`,
  status: { revision: 42, hash: 1, totalKey: 10 }, keys: 10, etcdVersion: '3.5.16', verify: 'pending', ms: { save: 5, compress: 3 },
};

const UPLOADED: HostAnswer<'snapshot-upload'> = { result: 'uploaded', verified: true, verifyMs: 5, seconds: 0.1 };

/** A stderr line that names the other failure: a classifier that matched text would pick it. */
const MISLEADING = 'trial restore failed (says the text; the exit code says otherwise)';

async function backupWith(upload: HostScript['snapshot-upload'], prepare: HostScript['snapshot-prepare'] = () => PREPARED) {
  const w = healthyWorld();
  const hosts = fakeHosts({ 'snapshot-prepare': prepare, 'snapshot-upload': upload, 'snapshot-discard': (_i, c) => ({ result: 'discarded', file: c.file }) });
  const alerts: Alert[] = [];
  const ports = fakePorts(w);
  const out = await backupCluster({
    observe: ports, objects: fakeCloud(w).objects, hosts, alerter: { alert: (a: Alert) => { alerts.push(a); return Promise.resolve(true); } },
    clock: fixedClock(), timings: TIMINGS, progress: () => undefined, tags: { cluster: 'quorum-keeper/cluster', member: 'quorum-keeper/etcd-member' },
  }, 'prod', SETTINGS);
  return { out, alerts, calls: hosts.calls };
}

describe('the backup over fakes: host failures by kind', () => {
  it('a follower is the source; a damaged snapshot (exit 8) fails verification, is discarded on that master, and alerts once as corrupt', async () => {
    const { out, alerts, calls } = await backupWith((i) => new HostFailure('corrupt', 'etcd-snapshot.sh upload', i, 'integrity check failed', 8));
    expect(out).toMatchObject({ result: 'failed', member: 'etcd-b', role: 'follower', failure: { step: 'verify', message: expect.stringMatching(/FAILED VERIFICATION.*integrity check failed/) as unknown } });
    expect(calls.map((c) => `${c.instanceId} ${c.command.kind}`)).toEqual(['i-b snapshot-prepare', 'i-b snapshot-upload', 'i-b snapshot-discard']);
    expect(calls[0]!.command).toEqual({ kind: 'snapshot-prepare', workDir: SETTINGS.workDir, endpoint: 'https://b:2379', compressor: 'auto' });
    expect(calls[2]!.command).toEqual({ kind: 'snapshot-discard', workDir: SETTINGS.workDir, file: FILE });
    expect(alerts.map((a) => a.dedupeKey)).toEqual(['prod#backup-corrupt']);
  });

  it('a trial restore without a verdict (exit 9) is "could not be verified", not corrupt, whatever its stderr says', async () => {
    const { out, alerts } = await backupWith((i) => new HostFailure('unverified', 'etcd-snapshot.sh upload', i, MISLEADING, 9));
    expect(out.failure).toMatchObject({ step: 'verify', message: expect.stringMatching(/could not be verified/) as unknown });
    expect(alerts.map((a) => a.dedupeKey)).toEqual(['prod#backup-verify']);
  });

  it('a failed PUT (exit 6) is an upload failure even when its stderr mentions a trial restore', async () => {
    const { out, alerts } = await backupWith((i) => new HostFailure('failed', 'etcd-snapshot.sh upload', i, MISLEADING, 6));
    expect(out.failure).toMatchObject({ step: 'upload', message: expect.stringMatching(/^upload of etcd-backups\/prod\//) as unknown });
    expect(alerts.map((a) => a.dedupeKey)).toEqual(['prod#backup-upload']);
  });

  it('a snapshot etcd wrote unreadable (prepare exit 8) is corrupt; a prepare that did not finish is a snapshot failure', async () => {
    const corrupt = await backupWith(() => UPLOADED, (i) => new HostFailure('corrupt', 'etcd-snapshot.sh prepare', i, 'not a valid snapshot', 8));
    expect(corrupt.out.failure).toMatchObject({ step: 'verify', message: expect.stringMatching(/FAILED VERIFICATION/) as unknown });
    expect(corrupt.calls.map((c) => c.command.kind)).toEqual(['snapshot-prepare']); // nothing staged: nothing to discard
    const unfinished = await backupWith(() => UPLOADED, (i) => new HostFailure('unfinished', 'etcd-snapshot.sh prepare', i, 'SSM command c-1 ended TimedOut'));
    expect(unfinished.out.failure).toMatchObject({ step: 'snapshot', message: expect.stringMatching(/failed: SSM command c-1 ended TimedOut/) as unknown });
    expect(unfinished.alerts.map((a) => a.dedupeKey)).toEqual(['prod#backup-snapshot']);
  });
});
