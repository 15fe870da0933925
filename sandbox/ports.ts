/**
 * Free TCP ports on 127.0.0.1 for the sandbox's etcd members, hosts and stand-ins.
 *
 * Each jest worker (JEST_WORKER_ID 1, 2, …) hands out ports from its own block of 2,000 below
 * Linux's ephemeral range (32768–60999, where bind(0) and outgoing connections take theirs): two
 * test files running side by side could otherwise both be given one port in the moment between
 * checking it is free and the etcd that needs it binding it (etcd then exits during start-up).
 * Outside jest (the demo, the bench): block 0. A port is handed out once per process, even if it
 * was closed meanwhile (a stopped etcd keeps its port for its restart).
 */
import { createServer } from 'node:net';

const FIRST = 12_000;
const BLOCK = 2_000;
const block = Number(process.env.JEST_WORKER_ID ?? 0) % 10; // 10 blocks: 12000–31999
let next = 0;

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  while (next < BLOCK) {
    const port = FIRST + block * BLOCK + next++;
    if (await bindable(port)) return port;
  }
  throw new Error(`sandbox: this process has used all ${BLOCK} ports of its block ${FIRST + block * BLOCK}–${FIRST + (block + 1) * BLOCK - 1}`);
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  let lastErr: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastErr instanceof Error ? `: ${lastErr.message}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}
