/** Starts moto_server (preinstalled Python tool) on a free 127.0.0.1 port. */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { freePort, waitFor } from './ports';

export class MotoServer {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(): Promise<MotoServer> {
    const which = spawnSync('sh', ['-c', 'command -v moto_server'], { encoding: 'utf8' });
    if (which.status !== 0) {
      throw new Error('moto_server is not installed (it is preinstalled on Quorum Keeper dev/CI machines; see README "Requirements")');
    }
    const port = await freePort();
    const child = spawn('moto_server', ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const url = `http://127.0.0.1:${port}`;
    const moto = new MotoServer(child, url);
    try {
      await waitFor('moto_server to answer', async () => {
        if (child.exitCode !== null) throw new Error(`moto_server exited: ${stderr}`);
        const res = await fetch(`${url}/moto-api/data.json`).catch(() => undefined);
        return res?.ok ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 150 });
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    return moto;
  }

  async reset(): Promise<void> {
    const res = await fetch(`${this.url}/moto-api/reset`, { method: 'POST' });
    if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((r) => this.child.once('exit', () => r()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  }
}
