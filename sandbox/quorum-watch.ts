/**
 * Samples the sandbox cluster's healthy voters every 0.5 s for as long as a scenario runs, so a
 * test can assert that quorum held throughout (not only at the end). A voter is healthy when it
 * answers `maintenance/status` (etcd's v3 HTTP gateway) with a leader; voters come from the
 * member list of the first member that answers. Samples start on a fixed beat whether or not
 * the previous one has ended, so a slow member cannot stretch the interval.
 */
import type { Sandbox } from './sandbox';

export interface QuorumSample {
  at: number;
  voters: number;
  healthy: number;
}

export interface QuorumReport {
  samples: number;
  /** Samples with fewer healthy voters than the quorum of the voters listed. */
  belowQuorum: QuorumSample[];
  minHealthy: number;
  /** Longest time between two sample starts, ms (the beat actually achieved). */
  longestIntervalMs: number;
}

const EVERY_MS = 500;

interface Listed { ID: string; isLearner?: boolean; clientURLs?: string[] }

async function post<T>(url: string, path: string): Promise<T | null> {
  try {
    const r = await fetch(`${url}${path}`, { method: 'POST', body: '{}', signal: AbortSignal.timeout(2000) });
    return r.ok ? ((await r.json()) as T) : null;
  } catch {
    return null;
  }
}

export class QuorumWatch {
  private readonly samples: QuorumSample[] = [];
  private readonly starts: number[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly sandbox: Sandbox) {}

  start(): this {
    this.timer = setInterval(() => {
      const p = this.sample().finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }, EVERY_MS);
    return this;
  }

  private async sample(): Promise<void> {
    const at = Date.now();
    this.starts.push(at);
    let members: Listed[] | null = null;
    for (const h of this.sandbox.hosts.values()) {
      members = (await post<{ members?: Listed[] }>(h.clientUrl, '/v3/cluster/member/list'))?.members ?? null;
      if (members) break;
    }
    if (!members) {
      this.samples.push({ at, voters: 0, healthy: 0 });
      return;
    }
    const voters = members.filter((m) => !m.isLearner);
    const answers = await Promise.all(voters.map(async (m) => {
      const url = m.clientURLs?.[0];
      const st = url ? await post<{ leader?: string }>(url, '/v3/maintenance/status') : null;
      return st !== null && st.leader !== undefined && st.leader !== '0';
    }));
    this.samples.push({ at, voters: voters.length, healthy: answers.filter(Boolean).length });
  }

  async stop(): Promise<QuorumReport> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.inFlight]);
    const sorted = [...this.samples].sort((a, b) => a.at - b.at);
    let longest = 0;
    for (let i = 1; i < this.starts.length; i++) longest = Math.max(longest, this.starts[i]! - this.starts[i - 1]!);
    return {
      samples: sorted.length,
      // An empty listing (no member answered at all) counts as below quorum too.
      belowQuorum: sorted.filter((s) => s.voters === 0 || s.healthy < Math.floor(s.voters / 2) + 1),
      minHealthy: Math.min(...sorted.map((s) => s.healthy)),
      longestIntervalMs: longest,
    };
  }
}
