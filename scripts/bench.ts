/**
 * npm run bench — performance measured as ratios against the raw operations, in the same run.
 *
 * Backup pipeline: a ~200 MB etcd DB in the sandbox (3 real members). The product flow
 * (backupCluster: SSM, snapshot save, status, trial restore, compress, hash, presign, upload,
 * HEAD check, retention listing) against the raw work it cannot avoid, done by hand on the
 * same follower: `etcdctl snapshot save` + the same compressor + one PUT of the file to S3.
 * Each is run BENCH_ROUNDS times (default 3), alternating; the medians are compared.
 *
 * API calls per flow (scripts/bench-api.ts): counted by SDK middleware for one run of each
 * flow on one cluster, with 1, 10 and 50 clusters in the account (BENCH_CLUSTERS).
 * Bundles and cold init (scripts/bench-cold.ts): each function's zip and its module load +
 * handler init in a fresh process.
 *
 * Master replacement (scripts/bench-replace.ts): replaceMaster from the launch event to
 * CONTINUE against the raw attach / mount / member update / start / catch-up / register /
 * complete it needs, alternating rounds on freshly killed masters.
 *
 * The replacement under the AWS latency profile (scripts/bench-latency.ts): launch event to
 * CONTINUE with AWS's typical delays, the SSM command poll before and after tuning.
 *
 * Scheduled runs over many clusters (scripts/bench-fanout.ts): the probe, backup and reconciler
 * handlers over 1, 10 and 50 clusters (BENCH_FANOUT_CLUSTERS) under the AWS latency profile, in
 * one invocation and handed off one invocation per cluster, against one cluster's run alone.
 *
 * The backup and the replacement run on etcd 3.5 and then 3.4 (BENCH_ETCD=3.5,3.4), in one run.
 *
 * Quorum loss → 3/3 healthy (scripts/bench-recovery.ts): two and three masters lost with their
 * volumes under the AWS latency profile, recovered by the reconciler from the survivor's copy and
 * the newest backup; AWS's share against Quorum Keeper's.
 *
 * BENCH_ONLY=backup,replace,latency,recovery,api,cold,fanout picks sections (default all). Writes .tmp/bench/results.json
 * (machine-readable) and .tmp/bench/results.md (the tables).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { backupCluster } from '../lib/flows/backup';
import { destroyClients, provisionCluster, sandboxClients } from '../sandbox/cluster';
import { destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxBackupDeps, sandboxBackupSettings } from '../sandbox/control';
import { putKeysBulk } from '../sandbox/scenario';
import { Sandbox } from '../sandbox/sandbox';
import { apiCallsTable, benchApiCalls } from './bench-api';
import { benchColdInit, coldTable } from './bench-cold';
import { benchReplacement, replaceTable } from './bench-replace';
import { benchFanOut, fanOutTable } from './bench-fanout';
import { benchLatency, latencyTable } from './bench-latency';
import { benchRecovery, recoveryTable } from './bench-recovery';
import { AWS_TIMINGS } from '../lib/flows/deps';
import { etcdBinDirs } from '../sandbox/etcd-bin';
import { SandboxPki } from '../sandbox/pki';

const run = promisify(execFile);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const TARGET_MB = Number(process.env.BENCH_DB_MB ?? 200);
const OUT = join(__dirname, '..', '.tmp', 'bench');
const ONLY = new Set((process.env.BENCH_ONLY ?? 'backup,replace,latency,recovery,api,cold,fanout').split(','));
const LATENCY_ROUNDS = Number(process.env.BENCH_LATENCY_ROUNDS ?? 2);
const CLUSTERS = (process.env.BENCH_CLUSTERS ?? '1,10,50').split(',').map(Number);
const FANOUT_CLUSTERS = (process.env.BENCH_FANOUT_CLUSTERS ?? '1,10,50').split(',').map(Number);

const ETCD_VERSIONS = (process.env.BENCH_ETCD ?? '3.5,3.4').split(',') as Array<'3.4' | '3.5'>;
if (ETCD_VERSIONS.some((v) => v !== '3.4' && v !== '3.5')) throw new Error(`BENCH_ETCD: 3.4 and/or 3.5, comma-separated; got ${process.env.BENCH_ETCD}`);
const BINS = etcdBinDirs();

/** Masters booted from now on, and the harness's etcdctl, run etcd `v`. */
function useEtcdFor(sandbox: Sandbox, v: '3.4' | '3.5'): void {
  sandbox.etcdBinDir = BINS[v];
  // The 3.4 directory is the system's (/usr/bin): put first, never removed; 3.5's is ours alone.
  process.env.PATH = [BINS[v], ...(process.env.PATH ?? '').split(':').filter((p) => p !== BINS['3.5'])].join(':');
  log(`etcd ${v}: ${BINS[v]}`);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const log = (s: string) => process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const results: Record<string, unknown> = { date: new Date().toISOString(), replacement: {}, backup: {} };
  const tables: string[] = [];
  if (ONLY.has('cold')) {
    const cold = benchColdInit(ROUNDS + 2, log);
    results.bundles = cold;
    tables.push(coldTable(cold));
  }
  if (['backup', 'replace', 'latency', 'recovery', 'api', 'fanout'].some((x) => ONLY.has(x))) {
    const sandbox = await Sandbox.start();
    const c = sandboxClients(sandbox);
    try {
      // The replacement and the backup on each etcd (BENCH_ETCD, default 3.5 then 3.4): the same
      // run, the same machine, so the two versions' ratios can be set side by side.
      for (const v of ETCD_VERSIONS) {
        if (!ONLY.has('replace') && !ONLY.has('backup')) break;
        useEtcdFor(sandbox, v);
        if (ONLY.has('replace')) {
          await sandbox.reset();
          sandbox.etcdBinDir = BINS[v];
          const replace = await benchReplacement(sandbox, c, ROUNDS, log);
          (results.replacement as Record<string, unknown>)[v] = replace;
          tables.push(`etcd ${v}:\n\n${replaceTable(replace)}`);
        }
        if (ONLY.has('backup')) {
          await sandbox.reset();
          sandbox.etcdBinDir = BINS[v];
          const backup = await benchBackup(sandbox, c);
          (results.backup as Record<string, unknown>)[v] = backup.result;
          tables.push(`etcd ${v}:\n\n${backup.table}`);
        }
      }
      useEtcdFor(sandbox, ETCD_VERSIONS[0] ?? '3.5');
      await sandbox.reset();
      if (ONLY.has('latency')) {
        // The Lambda's timings, then the SSM command poll tuned for AWS's ~1 s delivery.
        const latency = await benchLatency(sandbox, c, LATENCY_ROUNDS, [
          { name: 'command poll 2–15 s (the waiters\' default, before)', timings: { commandMinDelaySec: 2, commandMaxDelaySec: 15 } },
          { name: `command poll ${AWS_TIMINGS.commandMinDelaySec}–${AWS_TIMINGS.commandMaxDelaySec} s (AWS_TIMINGS, after)`, timings: {} },
        ], log);
        results.latency = latency;
        tables.push(latencyTable(latency));
      }
      if (ONLY.has('recovery')) {
        const recovery = await benchRecovery(sandbox, c, log);
        results.recovery = recovery;
        tables.push(recoveryTable(recovery));
      }
      if (ONLY.has('api')) {
        const api = await benchApiCalls(sandbox, c, CLUSTERS, log);
        results.apiCalls = api;
        tables.push(apiCallsTable(api, CLUSTERS));
      }
      if (ONLY.has('fanout')) {
        const fanout = await benchFanOut(sandbox, c, FANOUT_CLUSTERS, log);
        results.fanOut = fanout;
        tables.push(fanOutTable(fanout));
      }
    } finally {
      destroyClients(c);
      await sandbox.stop();
    }
  }
  writeFileSync(join(OUT, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(OUT, 'results.md'), `${tables.join('\n\n')}\n`);
  process.stdout.write(`${tables.join('\n\n')}\n\nresults: .tmp/bench/results.json, .tmp/bench/results.md\n`);
}

async function benchBackup(sandbox: Sandbox, c: ReturnType<typeof sandboxClients>): Promise<{ result: unknown; table: string }> {
  const ctl = await provisionControl(sandbox);
  const b = await provisionBackups(sandbox);
  const cluster = await provisionCluster(sandbox, c, { name: 'bench' });
  log(`filling etcd to a ~${TARGET_MB} MB DB (random 4 KB values)…`);
  const t = Date.now();
  await putKeysBulk(cluster.members[0]!.clientUrl, '/registry/bench/', Math.round((TARGET_MB * 1e6) / 6000), { valueBytes: 4096 });
  log(`filled in ${((Date.now() - t) / 1000).toFixed(1)} s`);

  const deps = sandboxBackupDeps(c, ctl, b);
  const settings = sandboxBackupSettings(b, { compressor: 'zstd' });
  const flow: number[] = [];
  const raw: number[] = [];
  const parts: Array<Record<string, number>> = [];
  let rawSize = 0;
  let size = 0;
  const flowOnce = async (i: number) => {
    const t0 = Date.now();
    const out = await backupCluster(deps, 'bench', settings);
    const ms = Date.now() - t0;
    if (out.result !== 'uploaded') throw new Error(`backup failed: ${out.failure?.message}`);
    rawSize = out.rawSize ?? 0;
    size = out.size ?? 0;
    log(`flow  #${i}: ${(ms / 1000).toFixed(2)} s (save ${out.ms.save} ms, compress ${out.ms.compress} ms, upload step ${out.ms.upload} ms of which PUT ${out.ms.put} ms; trial restore ${out.ms.verify} ms beside compress and signing)`);
    return { ms, out };
  };
  // A warm-up run (not counted) also tells which follower the flow backs up from.
  const warm = await flowOnce(0);
  const member = cluster.members.find((m) => m.name === warm.out.member)!;
  const rawOnce = async (i: number) => {
    const dir = join(sandbox.host(member.instanceId).root, 'bench-raw');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const r0 = Date.now();
    await run('etcdctl', [`--endpoints=${member.clientUrl}`, ...SandboxPki.current().harnessEtcdctlFlags, 'snapshot', 'save', join(dir, 's.db')], { env: { PATH: process.env.PATH, ETCDCTL_API: '3' } });
    await run('zstd', ['-q', '-3', '-T0', '-f', join(dir, 's.db'), '-o', join(dir, 's.db.zst')]);
    const url = await getSignedUrl(b.s3, new PutObjectCommand({ Bucket: b.store.bucket, Key: `raw/${i}.db.zst` }), { expiresIn: 600 });
    const put = await run('curl', ['-sS', '-f', '-o', '/dev/null', '-w', '%{time_total}', '-X', 'PUT', '--upload-file', join(dir, 's.db.zst'), url]);
    const ms = Date.now() - r0;
    log(`raw   #${i}: ${(ms / 1000).toFixed(2)} s (${statSync(join(dir, 's.db')).size} → ${statSync(join(dir, 's.db.zst')).size} bytes; PUT ${Math.round(Number(put.stdout) * 1000)} ms)`);
    rmSync(dir, { recursive: true, force: true });
    return ms;
  };
  for (let i = 1; i <= ROUNDS; i++) {
    // Alternate which goes first, so neither always runs on a warmer cache.
    if (i % 2) {
      const f = await flowOnce(i);
      flow.push(f.ms);
      parts.push({ ...f.out.ms });
      raw.push(await rawOnce(i));
    } else {
      raw.push(await rawOnce(i));
      const f = await flowOnce(i);
      flow.push(f.ms);
      parts.push({ ...f.out.ms });
    }
  }
  const ratio = median(flow) / median(raw);
  const result = {
    rounds: ROUNDS, dbBytes: rawSize, compressedBytes: size,
    flowMs: flow, rawMs: raw, flowMedianMs: median(flow), rawMedianMs: median(raw), ratio: Number(ratio.toFixed(3)), target: 1.3, parts,
  };
  const table = [
    '| benchmark | product flow (median) | raw operations (median) | ratio | goal |',
    '|---|---|---|---|---|',
    `| backup of a ${(rawSize / 1e6).toFixed(0)} MB etcd DB (→ ${(size / 1e6).toFixed(0)} MB zstd) | ${(median(flow) / 1000).toFixed(2)} s | ${(median(raw) / 1000).toFixed(2)} s (save + zstd + PUT) | ${ratio.toFixed(2)}× | ≤ 1.3× |`,
  ].join('\n');
  destroyBackups(b);
  destroyControl(ctl);
  return { result, table };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
