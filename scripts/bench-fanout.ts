/**
 * Scheduled runs over many clusters (issue 19, item 10), under the AWS latency profile
 * (sandbox/latency.ts): the probe, the backup and the reconciler Lambda handlers over 1, 10 and
 * 50 clusters (BENCH_FANOUT_CLUSTERS), each run two ways:
 *   - in one invocation, 4 clusters at a time: what a scheduled run did before the hand-off (a
 *     request that names its clusters still runs so);
 *   - handed off (functions/fan-out.ts): the scheduled invocation gives each cluster its own
 *     asynchronous invocation; the wall time runs until the last of them has ended.
 * The raw operation is one cluster's run alone, in the same run; each wall time is a ratio
 * against it. The function's timeout (serverless.yml) is the line a run must stay well inside.
 *
 * Clusters of one member: every sandbox host shares this 2-core machine (on AWS each cluster's
 * masters are their own machines), so 150 etcd members would measure this machine's CPU, not
 * the flows' waits; a one-member cluster makes the same calls (one survey, one snapshot).
 */
import { readFileSync } from 'node:fs';
import type { Context } from 'aws-lambda';
import { provisionCluster, type SandboxClients } from '../sandbox/cluster';
import { destroyBackups, destroyControl, provisionBackups, provisionControl, sandboxLambdaEnv } from '../sandbox/control';
import { AWS_LATENCY, SANDBOX_LATENCY } from '../sandbox/latency';
import type { Sandbox } from '../sandbox/sandbox';

type RunResult = { clusters: Array<{ cluster: string; error?: string; result?: string }>; handedOff: string[] };
type Handler = (event: unknown, ctx: Context) => Promise<RunResult>;

export interface FanOutRow { fn: string; clusters: number; rawMs: number; inlineMs: number; handedOffMs: number; slowestRunMs: number; failed: number; timeoutSec: number }

const FUNCTIONS = [
  { fn: 'probe', module: '../functions/probe', timeoutSec: 50 },
  { fn: 'backup', module: '../functions/backup', timeoutSec: 900 },
  { fn: 'reconcile', module: '../functions/reconcile', timeoutSec: 900 },
] as const;

/** The handlers embed the host scripts as text (esbuild's text loader in the bundle, a jest transform in tests); so does this script. */
function loadShellScriptsAsText(): void {
  require.extensions['.sh'] = (m, file) => {
    m.exports = readFileSync(file, 'utf8');
  };
}

const SCHEDULED = { 'detail-type': 'Scheduled Event', source: 'aws.events', detail: {} };

export async function benchFanOut(sandbox: Sandbox, c: SandboxClients, sizes: readonly number[], log: (s: string) => void): Promise<FanOutRow[]> {
  await sandbox.reset();
  sandbox.useLatency(SANDBOX_LATENCY);
  const ctl = await provisionControl(sandbox);
  const b = await provisionBackups(sandbox);
  const rows: FanOutRow[] = [];
  try {
    Object.assign(process.env, sandboxLambdaEnv(sandbox, ctl), { QK_BACKUP_BUCKET: b.store.bucket, QK_BACKUP_KMS_KEY_ID: b.kmsKeyArn });
    // The Lambdas' own command poll (AWS_TIMINGS), not the tests' 1 s.
    delete process.env.QK_POLL_MIN_DELAY_SEC;
    delete process.env.QK_POLL_MAX_DELAY_SEC;
    loadShellScriptsAsText();
    const handlers = await Promise.all(FUNCTIONS.map(async (f) => ({ ...f, handler: ((await import(f.module)) as { handler: Handler }).handler })));
    for (const f of handlers) sandbox.lambda.register(`bench-${f.fn}`, { handler: (e, ctx) => f.handler(e, ctx), maximumRetryAttempts: 0 });
    const names: string[] = [];
    for (const n of [...sizes].sort((x, y) => x - y)) {
      sandbox.useLatency(SANDBOX_LATENCY);
      while (names.length < n) {
        const name = `c${String(names.length + 1).padStart(2, '0')}`;
        await provisionCluster(sandbox, c, { name, size: 1 });
        names.push(name);
      }
      log(`fan-out: ${n} cluster(s) provisioned`);
      sandbox.useLatency(AWS_LATENCY);
      for (const f of handlers) {
        const ctx = sandbox.lambda.context(`bench-${f.fn}`);
        const timed = async (event: unknown) => {
          const t0 = Date.now();
          const out = await f.handler(event, ctx);
          return { out, ms: Date.now() - t0 };
        };
        const raw = await timed({ clusters: [names[0]] });
        const inline = await timed({ clusters: names });
        const before = sandbox.lambda.runs.length;
        const t0 = Date.now();
        const scheduled = await f.handler(SCHEDULED, ctx);
        const runs = sandbox.lambda.runs.slice(before);
        const ended = await Promise.all(runs.map(async (r) => ({ o: await r.done, ms: Date.now() - t0 })));
        const handedOffMs = Date.now() - t0;
        const results = [...scheduled.clusters, ...ended.flatMap((e) => (e.o.result as RunResult | undefined)?.clusters ?? [{ cluster: '?', error: e.o.error ?? 'no result' }])];
        const failed = [...inline.out.clusters, ...results].filter((x) => x.error !== undefined || x.result === 'failed').length;
        const row = { fn: f.fn, clusters: n, rawMs: raw.ms, inlineMs: inline.ms, handedOffMs, slowestRunMs: Math.max(0, ...ended.map((e) => e.ms)), failed, timeoutSec: f.timeoutSec };
        rows.push(row);
        log(`fan-out: ${f.fn} over ${n}: one cluster ${(raw.ms / 1000).toFixed(1)} s; one invocation ${(inline.ms / 1000).toFixed(1)} s; handed off ${(handedOffMs / 1000).toFixed(1)} s (${runs.length} invocations); ${failed} failed`);
      }
    }
  } finally {
    sandbox.useLatency(SANDBOX_LATENCY);
    destroyBackups(b);
    destroyControl(ctl);
  }
  return rows;
}

export function fanOutTable(rows: readonly FanOutRow[]): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  const r = (ms: number, raw: number) => `${(ms / raw).toFixed(1)}×`;
  return [
    '| scheduled run (AWS latency profile) | clusters | one cluster alone (raw) | one invocation, 4 at a time | ratio | handed off, one invocation per cluster | ratio | function timeout | failed |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map((x) => `| ${x.fn} | ${x.clusters} | ${s(x.rawMs)} | ${s(x.inlineMs)}${x.inlineMs > x.timeoutSec * 1000 ? ' (over the timeout)' : ''} | ${r(x.inlineMs, x.rawMs)} | ${x.clusters > 1 ? `${s(x.handedOffMs)} | ${r(x.handedOffMs, x.rawMs)}` : '– (one cluster runs in place) | –'} | ${x.timeoutSec} s | ${x.failed} |`),
  ].join('\n');
}
