/**
 * The step engine every flow runs on. A flow is an ordered list of named steps (`Step`, in
 * steps.ts), each with `run` (do it, re-reading the world first) and `plan` (say what it would
 * do now, from read-only calls). `runSteps` walks the list for real, `planSteps` for a dry run:
 * the dry run walks the very list the flow runs, so the two cannot drift.
 *
 * `FlowRun` gives each step what every flow needs, one way only:
 *   - step reporting: `start` / `ok` / `skip` / `wait` / `fail` with its duration;
 *   - the deadline: the run's signal is checked between steps and carried into every wait, so a
 *     run started late stops within a poll interval instead of overrunning mid-step;
 *   - polling (`poll`) that always carries the clock, the signal and the heartbeat, and a beat
 *     on a timer through one long call that cannot poll (`beating`: a waiter, a host command);
 *   - one host-script call (`host`) with one error mapping;
 *   - lock holding (`hold`): every lock held is extended by the heartbeat, and losing one stops
 *     the run (`LockLost`); `verifyLocks` proves them right before a change that needs them;
 *   - `FlowFailure`: the step that failed, what to do about it, and the error behind it (`cause`).
 *
 * Lists (steps.ts) may start a step beside the ones that follow (`beside`) and wait for it later
 * (`join`), and hold a lock around some of their steps (`holding`). A step started beside is cancelled
 * (through its signal) and waited for when the run fails, so nothing of a run outlives it.
 */
import { randomUUID } from 'node:crypto';
import { type WaitOpts, waiterText } from '../aws/ec2';
import type { ClusterLock } from '../aws/lock';
import type { RunOptions } from '../aws/run-command';
import { type Clock, pollUntil, TimeoutError } from '../clock';
import { type HostAnswer, type HostCallOptions, type HostCommand, HostFailure, type Hosts } from '../host/commands';

export type StepStatus = 'start' | 'ok' | 'skip' | 'wait' | 'fail';
export interface StepEvent { step: string; status: StepStatus; detail: string; ms?: number }
export type Progress = (event: StepEvent) => void;

/**
 * What kind of failure it is, for a flow's outcome policy (`OutcomePolicy`): the flow decides
 * what a code means for it (a replacement that finds no quorum comes in awaiting DR; any other
 * failure ABANDONs). Alerts are de-duplicated separately (`dedupe`).
 */
/**
 * What a failure means to the flow's outcome policy. `no-quorum`: quorum is lost (judged by the one
 * rule, on evidence); `cannot-see`: Quorum Keeper cannot tell — never treated as `no-quorum`.
 */
export type FailureCode = 'no-quorum' | 'cannot-see' | 'bootstrap-refused' | 'bootstrap-timeout' | 'unexpected' | 'failed';

/** A step that failed for a reason an operator can act on. */
export class FlowFailure extends Error {
  override readonly name = 'FlowFailure';
  readonly code: FailureCode;
  constructor(
    readonly step: string,
    message: string,
    readonly action: string,
    readonly severity: 'critical' | 'warning' = 'critical',
    /** Alerts with the same key are sent once per window (e.g. one per slot and cause). */
    readonly dedupe: string = step,
    options?: { cause?: unknown; code?: FailureCode },
  ) {
    super(message, options);
    this.code = options?.code ?? 'failed';
  }
}

/** A flow's one outcome policy: what each failure code leads to (`otherwise` for the rest). */
export interface OutcomePolicy<K extends string> {
  codes: Partial<Record<FailureCode, K>>;
  otherwise: K;
}

/** How a run that threw ends: another flow took over (`busy`), or the policy's outcome for the failure. */
export type Settled<K extends string> = { kind: 'busy'; reason: string } | { kind: K; failure: FlowFailure };

/** A lock this run held expired and another flow took it: stop, that flow drives now. */
export class LockLost extends Error {
  override readonly name = 'LockLost';
}

/** What a run needs from its flow's dependencies. */
export interface RunDeps {
  clock: Clock;
  /** Where steps are reported; absent = nowhere (the probe: its metrics are the report). */
  progress?: Progress;
  signal?: AbortSignal;
  timings: { minDelaySec: number; maxDelaySec: number; commandMinDelaySec: number; commandMaxDelaySec: number; lockTimeoutSec?: number };
  /** The host port: commands run on masters (lib/host/commands.ts). */
  hosts?: Hosts;
  lock?: Pick<ClusterLock, 'tryAcquire' | 'extend' | 'release'>;
}

export interface FlowRunOptions {
  /** Called on every heartbeat (e.g. the lifecycle hook's RecordLifecycleActionHeartbeat). */
  heartbeat?: () => Promise<unknown>;
  /** What to do when a wait times out (the flow's own advice). */
  timeoutAction?: string;
  /** Who holds this run's locks (for the lock table; a UUID is added). */
  owner?: string;
  /** Beat at most this often (default BEAT_EVERY_MS); shorter for a hook with a short heartbeat timeout. */
  beatEveryMs?: number;
}

/** Heartbeats (lock extension, lifecycle heartbeat) at most this often. */
export const BEAT_EVERY_MS = 30_000;

export interface Done<T> { value: T; detail: string; skipped?: boolean }

/** A step started beside others: `done` settles with it; `cancel` stops it and waits for it. */
export interface Beside<T> { done: Promise<T>; cancel: () => Promise<void> }

export class FlowRun {
  /** The step running now (named in failure records). */
  current = 'start';
  /** The last step that finished ok. */
  lastDone = 'nothing';
  private lastBeat = -Infinity;
  private readonly held = new Map<string, string>();
  private readonly owner: string;

  constructor(readonly deps: RunDeps, private readonly opts: FlowRunOptions = {}) {
    this.owner = `${opts.owner ?? 'flow'}/${randomUUID()}`;
  }

  get signal(): AbortSignal | undefined {
    return this.deps.signal;
  }

  /**
   * The one failure tail every flow shares. Stopped before the deadline (or shut down): said,
   * then re-thrown — no alert, no hook completed, the retried event or the reconciler resumes.
   * A lock lost: `busy` (the flow that took it decides). Anything else: the policy's outcome
   * for its code (an error that is no FlowFailure is `unexpected`).
   */
  settle<K extends string>(err: unknown, policy: OutcomePolicy<K>, unexpectedAction: string): Settled<K> {
    const reason = err instanceof Error ? err.message : String(err);
    if (this.aborted) {
      this.say(this.current, 'fail', `stopped before the Lambda deadline (${reason}); the retried event resumes`);
      this.deps.signal?.throwIfAborted();
      throw err;
    }
    if (err instanceof LockLost) return { kind: 'busy', reason };
    const failure = err instanceof FlowFailure ? err : new FlowFailure(this.current, reason, unexpectedAction, 'critical', 'unexpected', { cause: err, code: 'unexpected' });
    return { kind: policy.codes[failure.code] ?? policy.otherwise, failure };
  }

  /** Whether the run was stopped (deadline or shutdown) rather than failed. */
  get aborted(): boolean {
    return this.deps.signal?.aborted === true;
  }

  say(step: string, status: StepStatus, detail: string, ms?: number): void {
    if (status === 'ok') this.lastDone = step;
    this.deps.progress?.({ step, status, detail, ...(ms === undefined ? {} : { ms }) });
  }

  /** Every BEAT_EVERY_MS (or when forced): extend every lock held, then the flow's heartbeat. */
  async beat(force = false): Promise<void> {
    if (!force && this.deps.clock.now() - this.lastBeat < (this.opts.beatEveryMs ?? BEAT_EVERY_MS)) return;
    this.lastBeat = this.deps.clock.now();
    await this.verifyLocks();
    await this.opts.heartbeat?.();
  }

  /**
   * Awaits `work` (one long SDK or SSM call that cannot beat itself: a waiter, a host command)
   * while beating on a timer, so a lock or a hook with a short heartbeat timeout stays alive.
   * A lost lock ends the wait with LockLost.
   */
  async beating<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const ticker = new Promise<never>((_, reject) => {
      timer = setInterval(() => void this.beat().catch((err: unknown) => {
        clearInterval(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      }), Math.min(this.opts.beatEveryMs ?? BEAT_EVERY_MS, 5000));
    });
    ticker.catch(() => undefined); // settled after the race only when a beat fails late
    try {
      return await Promise.race([work, ticker]);
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Proves, right now, that this run still holds every lock it took (each is extended; a lost one
   * raises LockLost). For the moment just before a membership change or an etcd stop.
   */
  async verifyLocks(): Promise<void> {
    for (const [key, owner] of [...this.held]) {
      if (!(await this.deps.lock!.extend(key, owner)) && this.held.get(key) === owner) throw new LockLost(`another flow took over ${key}`);
    }
  }

  /** Runs one named step: checks the deadline, beats, reports start and end. */
  async step<T>(name: string, fn: () => Promise<Done<T>>): Promise<T> {
    // Near the Lambda deadline the run stops between steps; a later run resumes.
    this.deps.signal?.throwIfAborted();
    await this.beat();
    this.current = name;
    const t0 = this.deps.clock.now();
    this.say(name, 'start', '');
    try {
      const { value, detail, skipped } = await fn();
      this.say(name, skipped ? 'skip' : 'ok', detail, this.deps.clock.now() - t0);
      return value;
    } catch (err) {
      this.say(name, 'fail', waiterText(err) ?? (err instanceof Error ? err.message : String(err)), this.deps.clock.now() - t0);
      throw this.failure(name, err);
    }
  }

  /** The error a step ends with: a timed-out wait becomes a FlowFailure naming the step. */
  private failure(name: string, err: unknown): unknown {
    if (err instanceof TimeoutError && !this.aborted) {
      return new FlowFailure(name, err.message, this.opts.timeoutAction ?? 'Check the function logs; the next run tries again.', 'critical', name, { cause: err });
    }
    const waited = this.aborted ? null : waiterText(err);
    if (waited) return new FlowFailure(name, waited, this.opts.timeoutAction ?? 'Check the function logs; the next run tries again.', 'critical', name, { cause: err });
    return err;
  }

  /** Starts step `name` beside the caller's own work, with a signal of its own. */
  beside<T>(name: string, fn: (signal: AbortSignal) => Promise<Done<T>>): Beside<T> {
    const own = new AbortController();
    const signal = this.deps.signal ? AbortSignal.any([own.signal, this.deps.signal]) : own.signal;
    const done = this.step(name, () => fn(signal));
    done.catch(() => undefined); // the caller joins it, or cancels it
    return { done, cancel: async () => { own.abort(); await done.catch(() => undefined); } };
  }

  /** Polls until `probe` returns a value: with the clock, the signal and the heartbeat, always. */
  poll<T>(what: string, probe: () => Promise<T | undefined>, o: { timeoutSec: number; intervalSec?: number; signal?: AbortSignal | undefined; onWait?: () => void }): Promise<T> {
    const signal = o.signal ?? this.deps.signal;
    return pollUntil(what, probe, {
      clock: this.deps.clock, timeoutMs: o.timeoutSec * 1000, intervalMs: (o.intervalSec ?? this.deps.timings.minDelaySec) * 1000,
      ...(signal ? { signal } : {}),
      onWait: async () => {
        o.onWait?.();
        await this.beat();
      },
    });
  }

  /** SSM Run Command settings for one host command waited on up to `maxWaitSec`. */
  runOpts(maxWaitSec = 600, o: { executionTimeoutSec?: number; signal?: AbortSignal | undefined } = {}): RunOptions {
    const signal = o.signal ?? this.deps.signal;
    return {
      minDelaySec: this.deps.timings.commandMinDelaySec, maxDelaySec: this.deps.timings.commandMaxDelaySec, maxWaitSec,
      ...(o.executionTimeoutSec ? { executionTimeoutSec: o.executionTimeoutSec } : {}), ...(signal ? { abortSignal: signal } : {}),
    };
  }

  /** SDK waiter settings for a wait of up to `maxWaitSec`, stopped by the run's signal. */
  waitOpts(maxWaitSec: number): WaitOpts {
    const { minDelaySec, maxDelaySec } = this.deps.timings;
    return { maxWaitSec, minDelaySec, maxDelaySec, ...(this.deps.signal ? { abortSignal: this.deps.signal } : {}) };
  }

  /** The host call options of this run: its command poll, its signal, waits up to `maxWaitSec`. */
  hostOpts(maxWaitSec = 600, o: { executionTimeoutSec?: number; signal?: AbortSignal | undefined } = {}): HostCallOptions {
    const { comment: _comment, ...run } = this.runOpts(maxWaitSec, o);
    return run;
  }

  /**
   * Runs a host command (lib/host/commands.ts) with the run's heartbeat. Idempotent steps
   * (`retryUnfinished`) are tried once more when SSM reports the command unfinished (the host runs
   * mutating steps one at a time, under flock). A failed command becomes a FlowFailure of `step`,
   * with `action` as advice; its HostFailure (with the exit code's `kind`) is the cause.
   */
  async host<C extends HostCommand>(instanceId: string, command: C, o: {
    step?: string; retryUnfinished?: boolean; maxWaitSec?: number; executionTimeoutSec?: number; signal?: AbortSignal | undefined;
    action?: (err: HostFailure) => string;
  } = {}): Promise<HostAnswer<C['kind']>> {
    const step = o.step ?? this.current;
    const hosts = this.deps.hosts;
    if (!hosts) throw new Error(`internal: ${step} runs a host command, but this flow has no host port`);
    try {
      return await this.beating(hosts.run(instanceId, command, {
        ...this.hostOpts(o.maxWaitSec, { ...(o.executionTimeoutSec ? { executionTimeoutSec: o.executionTimeoutSec } : {}), signal: o.signal }),
        retryUnfinished: o.retryUnfinished ?? false,
        onRetry: (detail) => this.say(step, 'wait', detail),
      }));
    } catch (err) {
      if (!(err instanceof HostFailure) || this.aborted) throw err;
      throw new FlowFailure(step, err.message, o.action?.(err) ?? hostAdvice(err), 'critical', step, { cause: err });
    }
  }

  /**
   * Runs `fn` holding `key` in the lock table: at once ('try', null when another flow holds it)
   * or waiting for it up to the lock timeout with heartbeats ('wait'; a FlowFailure when it never
   * comes). The heartbeat extends the lock while `fn` runs; it is released afterwards.
   */
  async hold<T>(key: string, mode: 'wait' | 'try', fn: () => Promise<T>, o: { waitDetail?: string; step?: string } = {}): Promise<T | null> {
    const lock = this.deps.lock!;
    const take = async () => ((await lock.tryAcquire(key, this.owner)) ? true : undefined);
    const got = mode === 'try' ? await take() : await this.poll(`the ${key} lock`, take, {
      timeoutSec: this.deps.timings.lockTimeoutSec ?? 300,
      onWait: () => this.say(o.step ?? 'lock', 'wait', o.waitDetail ?? `another flow holds the ${key} lock`),
    }).catch((err: unknown) => {
      if (err instanceof TimeoutError && !this.aborted) return undefined;
      throw err;
    });
    if (!got) return null;
    this.held.set(key, this.owner);
    try {
      return await fn();
    } finally {
      this.held.delete(key);
      await lock.release(key, this.owner);
    }
  }
}

/** The host command's failure behind `err` (FlowRun.host wraps it in a FlowFailure), if there is one: its kind is the script's exit code. */
export function hostFailureOf(err: unknown): HostFailure | null {
  if (err instanceof HostFailure) return err;
  return err instanceof FlowFailure && err.cause instanceof HostFailure ? err.cause : null;
}

/** What to do about a host command that failed, by its kind (the script's exit code; docs/host-scripts.md). */
export function hostAdvice(err: HostFailure): string {
  switch (err.kind) {
    case 'owner': return 'The volume is marked for another cluster or member: check the volume and ASG tags.';
    case 'copy': return 'This volume is a copy of the member\'s volume (an EBS snapshot restored with the same tags): it holds an older log under the same etcd member ID and is never used as that member. Untag or delete the copy. To move a member to another AZ, give it a blank volume there: it joins as a new member and syncs from the leader.';
    case 'unfinished': return `SSM Run Command did not finish on ${err.instanceId}: check the SSM agent there.`;
    case 'truncated': case 'answer': return 'The host scripts answered what this version does not expect: check that the deployed functions and their host scripts are of one version.';
    default: return 'Read the command output in SSM Run Command history for this instance.';
  }
}
