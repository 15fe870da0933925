/**
 * Flows as ordered lists of named steps, run (`runSteps`) and planned (`planSteps`) from the same
 * list, so a dry run cannot drift from the flow. A step can be started beside the ones after it
 * and joined later, and some steps can run holding a lock (`holding`). The run itself (reports,
 * deadline, polls, heartbeats, locks) is FlowRun in run.ts.
 */
import { FlowFailure, type FlowRun, type Beside } from './run';

export interface StepResult {
  detail: string;
  skipped?: boolean;
  /** The flow ends here, as planned (e.g. a retirement held for safety): the steps after it do not run. */
  stop?: boolean;
}
export interface PlanLine { action: string; /** The flow would stop here. */ stop?: boolean }

export interface Step<S> {
  readonly name: string;
  /** Does the step, re-reading what it needs. `signal` stops it (the run's, or its own when beside). */
  run(r: FlowRun, s: S, signal: AbortSignal | undefined): Promise<StepResult>;
  /** What it would do now, from read-only calls; null when it has nothing to say (it would skip). Flows with a dry run give every step one. */
  plan?(r: FlowRun, s: S): PlanLine | null | Promise<PlanLine | null>;
}

/**
 * What a step decides from what it reads, before it changes anything: act (with what the action
 * needs, and how the dry run says it), skip, end the flow as planned, or refuse (the failure the
 * flow's outcome policy then judges). One decision serves both the run and the dry run, so the
 * two cannot drift in what they decide.
 */
export type Decision<D> =
  | { kind: 'act'; says: string; with: D }
  | { kind: 'skip'; detail: string }
  | { kind: 'stop'; detail: string }
  | { kind: 'refuse'; failure: FlowFailure };

/**
 * A step made of a decision and the action that carries it out. `decide` only reads (the dry run
 * calls it); `act` runs only for `act`. `refused` words a refusal in the dry run (default: the
 * failure's message).
 */
export function decided<S, D>(name: string, o: {
  decide(r: FlowRun, s: S): Promise<Decision<D>>;
  act(r: FlowRun, s: S, d: D, signal: AbortSignal | undefined): Promise<StepResult>;
  refused?: (f: FlowFailure) => string;
}): Step<S> & { decide: (r: FlowRun, s: S) => Promise<Decision<D>> } {
  return {
    name,
    decide: (r, s) => o.decide(r, s),
    async run(r, s, signal) {
      const d = await o.decide(r, s);
      if (d.kind === 'refuse') throw d.failure;
      if (d.kind === 'skip') return { detail: d.detail, skipped: true };
      if (d.kind === 'stop') return { detail: d.detail, skipped: true, stop: true };
      return o.act(r, s, d.with, signal);
    },
    async plan(r, s) {
      const d = await o.decide(r, s);
      if (d.kind === 'refuse') return { action: `stop: ${o.refused ? o.refused(d.failure) : d.failure.message}`, stop: true };
      if (d.kind === 'skip') return null;
      if (d.kind === 'stop') return { action: `stop: ${d.detail}`, stop: true };
      return { action: d.says };
    },
  };
}

export type Entry<S> =
  | Step<S>
  | { kind: 'beside'; step: Step<S> }
  | { kind: 'join'; step: Step<S> }
  | { kind: 'holding'; key: (s: S) => string; what: string; entries: ReadonlyArray<Entry<S>> };

/** Starts `step` beside the entries that follow it. */
export const beside = <S>(step: Step<S>): Entry<S> => ({ kind: 'beside', step });
/** Waits for a step started `beside`; its failure fails the flow here. */
export const join = <S>(step: Step<S>): Entry<S> => ({ kind: 'join', step });
/** Holds a lock (waiting for it) around `entries`. */
export const holding = <S>(what: string, key: (s: S) => string, ...entries: Array<Entry<S>>): Entry<S> => ({ kind: 'holding', key, what, entries });

/** The step names of a list, in the order a reader sees them. */
export function stepNames<S>(entries: ReadonlyArray<Entry<S>>): string[] {
  return entries.flatMap((e) => ('run' in e ? [e.name] : e.kind === 'beside' ? [e.step.name] : e.kind === 'join' ? [] : stepNames(e.entries)));
}

/**
 * Runs the list for real; 'stopped' when a step ended the flow early (`StepResult.stop`). Steps
 * started beside are cancelled and waited for if the list fails or stops.
 */
export async function runSteps<S>(r: FlowRun, s: S, entries: ReadonlyArray<Entry<S>>): Promise<'done' | 'stopped'> {
  const started = new Map<Step<S>, Beside<boolean>>();
  const walk = async (list: ReadonlyArray<Entry<S>>): Promise<'done' | 'stopped'> => {
    for (const e of list) {
      if ('run' in e) {
        const stop = await r.step(e.name, async () => {
          const res = await e.run(r, s, r.signal);
          return { value: res.stop === true, ...res };
        });
        if (stop) return 'stopped';
      } else if (e.kind === 'beside') {
        started.set(e.step, r.beside(e.step.name, async (signal) => ({ value: false, ...(await e.step.run(r, s, signal)) })));
      } else if (e.kind === 'join') {
        const b = started.get(e.step);
        if (!b) throw new Error(`step ${e.step.name} was joined but never started beside`);
        started.delete(e.step);
        await b.done;
      } else {
        const key = e.key(s);
        const got = await r.hold(key, 'wait', () => walk(e.entries), { step: e.entries.find((x): x is Step<S> => 'run' in x)?.name ?? 'lock', waitDetail: `another flow holds the ${e.what}` });
        if (!got) throw new FlowFailure('lock', `the ${e.what} (${key}) stayed held for ${r.deps.timings.lockTimeoutSec ?? 300} s`, 'Another flow is changing this cluster; the next run tries again.', 'warning', `lock-${key}`);
        if (got === 'stopped') return got;
      }
    }
    return 'done';
  };
  try {
    return await walk(entries);
  } finally {
    for (const b of started.values()) await b.cancel();
  }
}

export interface PlannedStep { step: string; action: string }

/** Walks the same list for a dry run: each step's plan, in order, until one says the flow stops. */
export async function planSteps<S>(r: FlowRun, s: S, entries: ReadonlyArray<Entry<S>>): Promise<PlannedStep[]> {
  const out: PlannedStep[] = [];
  const walk = async (list: ReadonlyArray<Entry<S>>, prefix: string): Promise<boolean> => {
    let first = prefix;
    for (const e of list) {
      if (!('run' in e) && e.kind === 'holding') {
        if (!(await walk(e.entries, `under the ${e.what}: `))) return false;
        continue;
      }
      if (!('run' in e) && e.kind === 'join') continue;
      const step = 'run' in e ? e : e.step;
      let line: PlanLine | null;
      try {
        line = step.plan ? await step.plan(r, s) : null;
      } catch (err) {
        line = { action: `stop: ${err instanceof Error ? err.message : String(err)}`, stop: true };
      }
      if (!line) continue;
      out.push({ step: step.name, action: `${first}${line.action}` });
      first = '';
      if (line.stop) return false;
    }
    return true;
  };
  await walk(entries, '');
  return out;
}
