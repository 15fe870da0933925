/**
 * Samples the sandbox cluster's healthy voters every 0.5 s for as long as a scenario runs, so a
 * test can assert that quorum held throughout (not only at the end). A voter is healthy when it
 * answers `maintenance/status` (etcd's v3 HTTP gateway) with a leader; voters come from the
 * member list of the first member that answers. Samples start on a fixed beat whether or not
 * the previous one has ended, so a slow member cannot stretch the interval.
 *
 * A voter that answers without a leader is asked once more 300 ms later before the sample counts
 * it as unhealthy: right after a leadership move (which every retirement makes) the members learn
 * the new term one message apart, and for a few milliseconds two of three can answer "no leader"
 * while a majority is up and electing — an election, not a lost quorum (etcd's heartbeat is
 * 100 ms, so a cluster with quorum has a leader again well within 300 ms; one without quorum stays
 * leaderless). A CI run caught exactly that instant once in ~85 samples of an instance refresh.
 */
import { etcdFetch } from './etcd-http';

export interface QuorumSample {
  at: number;
  voters: number;
  healthy: number;
  /** Voters that did not answer, and voters that answered twice without a leader (named on failure). */
  silent: string[];
  leaderless: string[];
  /** Voters that answered without a leader at first and had one 300 ms later (an election). */
  elected: number;
}

export interface QuorumReport {
  samples: number;
  /** Samples with fewer healthy voters than the quorum of the voters listed. */
  belowQuorum: QuorumSample[];
  minHealthy: number;
  /** Longest time between two sample starts, ms (the beat actually achieved). */
  longestIntervalMs: number;
  /** Samples that caught an election in progress (a voter without a leader that had one 300 ms later). */
  elections: number;
}

const EVERY_MS = 500;
const RECHECK_MS = 300;

interface Listed { ID: string; name?: string; isLearner?: boolean; clientURLs?: string[] }
type Answer = 'leader' | 'leaderless' | 'silent';

/** POST to etcd's v3 HTTP gateway; null when it does not answer within 2 s or answers an error. */
export type GatewayPost = <T>(url: string, path: string, body?: string) => Promise<T | null>;

async function post<T>(url: string, path: string, body = '{}'): Promise<T | null> {
  try {
    const r = await etcdFetch(`${url}${path}`, { method: 'POST', body, signal: AbortSignal.timeout(2000) });
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

  constructor(
    private readonly sandbox: { hosts: ReadonlyMap<string, { clientUrl: string }> },
    private readonly gateway: GatewayPost = post,
  ) {}

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
      // The member's own view (etcd 3.5's linearizable list would time out in the very samples
      // that matter; 3.4 answers from local state either way): who the voters are, not whether they agree.
      members = (await this.gateway<{ members?: Listed[] }>(h.clientUrl, '/v3/cluster/member/list', '{"linearizable":false}'))?.members ?? null;
      if (members) break;
    }
    if (!members) {
      this.samples.push({ at, voters: 0, healthy: 0, silent: [], leaderless: [], elected: 0 });
      return;
    }
    const voters = members.filter((m) => !m.isLearner);
    const ask = async (m: Listed): Promise<Answer> => {
      const url = m.clientURLs?.[0];
      const st = url ? await this.gateway<{ leader?: string }>(url, '/v3/maintenance/status') : null;
      if (st === null) return 'silent';
      return st.leader !== undefined && st.leader !== '0' ? 'leader' : 'leaderless';
    };
    const first = await Promise.all(voters.map(ask));
    const quorum = Math.floor(voters.length / 2) + 1;
    let answers = first;
    if (first.filter((a) => a === 'leader').length < quorum && first.includes('leaderless')) {
      await new Promise((r) => setTimeout(r, RECHECK_MS));
      answers = await Promise.all(voters.map(async (m, i) => (first[i] === 'leaderless' ? ask(m) : first[i]!)));
    }
    const named = (kind: Answer) => voters.filter((_, i) => answers[i] === kind).map((m) => m.name || m.ID);
    this.samples.push({
      at, voters: voters.length, healthy: answers.filter((a) => a === 'leader').length,
      silent: named('silent'), leaderless: named('leaderless'),
      elected: answers.filter((a, i) => a === 'leader' && first[i] === 'leaderless').length,
    });
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
      elections: sorted.filter((s) => s.elected > 0).length,
    };
  }
}
