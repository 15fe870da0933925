/**
 * Bundle sizes and cold init (issue 8): package offline with osls into a temp dir, unpack each
 * function's zip, and time, in a fresh node process each, what a Lambda cold start runs before
 * the first event: loading the bundle, which validates the configuration and builds the SDK
 * clients, middy and Powertools at module scope. Measured on this machine's Node (Lambda runs
 * nodejs22.x on arm64: absolute numbers differ; compare functions and changes).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ColdResult {
  fn: string;
  zipBytes: number;
  bundleBytes: number;
  initMsMedian: number;
  initMs: number[];
}

const ENV = {
  AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'bench', AWS_SECRET_ACCESS_KEY: 'bench', QK_STATE_TABLE: 'quorum-keeper-state',
  QK_ALERT_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:quorum-keeper-alerts', QK_BACKUP_BUCKET: 'quorum-keeper-backups', POWERTOOLS_LOG_LEVEL: 'ERROR',
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export function benchColdInit(runs: number, log: (s: string) => void): ColdResult[] {
  const root = join(__dirname, '..');
  const dir = mkdtempSync(join(tmpdir(), 'qk-bench-package-'));
  try {
    const env: NodeJS.ProcessEnv = { ...process.env, SLS_TELEMETRY_DISABLED: '1', SLS_NOTIFICATIONS_MODE: 'off' };
    for (const k of Object.keys(env)) if (k.startsWith('AWS_ENDPOINT_URL')) delete env[k];
    const pkg = spawnSync('npx', ['osls', 'package', '--stage', 'bench', '--region', 'eu-west-1', '--package', dir], { cwd: root, env, encoding: 'utf8' });
    if (pkg.status !== 0) throw new Error(`osls package failed:\n${pkg.stdout}\n${pkg.stderr}`);
    const out: ColdResult[] = [];
    for (const zip of readdirSync(dir).filter((f) => f.endsWith('.zip')).sort()) {
      const fn = zip.replace(/\.zip$/, '');
      const unpacked = join(dir, fn);
      const x = spawnSync('python3', ['-m', 'zipfile', '-e', join(dir, zip), unpacked], { encoding: 'utf8' });
      if (x.status !== 0) throw new Error(`unpacking ${zip}: ${x.stderr}`);
      const bundle = join(unpacked, 'functions', `${fn}.js`);
      const probe = `const t=process.hrtime.bigint();const m=require(${JSON.stringify(bundle)});if(typeof m.handler!=='function')throw new Error('no handler');process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6));`;
      const initMs: number[] = [];
      for (let i = 0; i < runs; i++) {
        const r = spawnSync(process.execPath, ['-e', probe], { env: { PATH: process.env.PATH, ...ENV }, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`cold init of ${fn} failed: ${r.stderr}`);
        initMs.push(Number(Number(r.stdout).toFixed(1)));
      }
      out.push({ fn, zipBytes: statSync(join(dir, zip)).size, bundleBytes: statSync(bundle).size, initMsMedian: median(initMs), initMs });
      log(`cold init ${fn}: median ${median(initMs)} ms over ${runs} fresh processes (zip ${statSync(join(dir, zip)).size} bytes)`);
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function coldTable(r: readonly ColdResult[]): string {
  return [
    '| function | zip | bundle | cold init (module load + handler init, median) |',
    '|---|---|---|---|',
    ...r.map((x) => `| ${x.fn} | ${(x.zipBytes / 1024).toFixed(0)} KiB | ${(x.bundleBytes / 1024).toFixed(0)} KiB | ${x.initMsMedian} ms |`),
  ].join('\n');
}
