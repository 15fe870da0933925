/** Runs etcdctl/etcdutl on this machine (tests, sandbox, CLI on a master). No shell involved. */
import { execFile } from 'node:child_process';
import type { EtcdRunner, RunResult } from './client';

/** etcd(ctl) refuses an ETCD*_ variable that shadows a flag we pass: start from an env without them. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD')) env[k] = v;
  env.ETCDCTL_API = '3';
  return env;
}

export function localEtcdRunner(opts: { binDir?: string; timeoutMs?: number } = {}): EtcdRunner {
  return (inv) =>
    new Promise<RunResult>((resolve) => {
      const file = opts.binDir ? `${opts.binDir}/${inv.bin}` : inv.bin;
      execFile(file, inv.args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: cleanEnv() }, (err, stdout, stderr) => {
        if (err && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          resolve({ exitCode: 127, stdout: '', stderr: `${file}: executable file not found` });
          return;
        }
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ exitCode: code, stdout, stderr });
      });
    });
}
