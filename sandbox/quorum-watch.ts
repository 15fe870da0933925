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
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { SandboxPki } from './pki';
import { sampleQuorum } from './quorum-sampler';

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
  /**
   * The longest this process's event loop was blocked while watching, ms: a gap between samples
   * that matches it was this test process stalled (GC, synchronous work), not the cluster.
   */
  loopBlockedMs: number;
}

const EVERY_MS = 500;

/** POST to etcd's v3 HTTP gateway; null when it does not answer within 2 s or answers an error. */
export type GatewayPost = <T>(url: string, path: string, body?: string) => Promise<T | null>;

/**
 * Sampled on a worker thread of its own (the sandbox's etcd over TLS, the harness's certificate),
 * unless a gateway is given (unit tests: sampled here, over the scripted gateway).
 */
export class QuorumWatch {
  private samples: QuorumSample[] = [];
  private starts: number[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | null = null;
  private worker: Worker | null = null;
  private readonly loop = monitorEventLoopDelay({ resolution: 20 });

  constructor(
    private readonly sandbox: { hosts: ReadonlyMap<string, { clientUrl: string }> },
    private readonly gateway?: GatewayPost,
  ) {}

  private urls(): string[] {
    return [...this.sandbox.hosts.values()].map((h) => h.clientUrl);
  }

  start(): this {
    this.loop.enable();
    const gateway = this.gateway;
    if (!gateway) {
      const urls = this.urls();
      this.worker = new Worker(`require(${JSON.stringify(require.resolve('./quorum-sampler.js'))}).runWorker()`, {
        eval: true, workerData: { urls, everyMs: EVERY_MS, tls: urls.some((u) => u.startsWith('https:')) ? SandboxPki.current().harness : null },
      });
      return this;
    }
    this.timer = setInterval(() => {
      const at = Date.now();
      this.starts.push(at);
      const p = sampleQuorum(this.urls(), gateway).then(({ listed: _l, ...s }) => void this.samples.push({ at, ...s })).finally(() => this.inFlight.delete(p));
      this.inFlight.add(p);
    }, EVERY_MS);
    return this;
  }

  async stop(): Promise<QuorumReport> {
    if (this.timer) clearInterval(this.timer);
    this.loop.disable();
    await Promise.all([...this.inFlight]);
    const worker = this.worker;
    if (worker) {
      const done = new Promise<{ samples: QuorumSample[]; starts: number[] }>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
      worker.postMessage({ stop: true });
      ({ samples: this.samples, starts: this.starts } = await done);
      await worker.terminate();
      this.worker = null;
    }
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
      loopBlockedMs: Math.round(this.loop.max / 1e6),
    };
  }
}
