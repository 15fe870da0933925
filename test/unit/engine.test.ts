/**
 * The step engine (lib/flows/run.ts, steps.ts) without the sandbox: the deadline between steps,
 * side steps cancelled when the run fails, a step that stops the flow, lock re-checks, and the one
 * failure tail (`settle`) with a flow's outcome policy.
 */
import { replacementOutcomes } from '../../lib/flows/replacement';
import { FlowFailure, FlowRun, LockLost, type RunDeps, type StepEvent } from '../../lib/flows/run';
import { beside, holding, join, runSteps, type Step } from '../../lib/flows/steps';
import { systemClock } from '../../lib/clock';
import { memoryLock } from '../support/fake-cloud';

const TIMINGS = { minDelaySec: 0.01, maxDelaySec: 0.01, commandMinDelaySec: 0.01, commandMaxDelaySec: 0.01, lockTimeoutSec: 1 };

function harness(signal?: AbortSignal) {
  const events: StepEvent[] = [];
  const lock = memoryLock();
  const deps: RunDeps = { clock: systemClock, timings: TIMINGS, progress: (e) => events.push(e), lock, ...(signal ? { signal } : {}) };
  return { r: new FlowRun(deps), events, lock };
}

const step = (name: string, run: Step<string[]>['run']): Step<string[]> => ({ name, run });
const ok = (name: string) => step(name, (_r, s) => Promise.resolve((s.push(name), { detail: name })));

describe('the step engine', () => {
  it('walks the steps in order; a step that stops the flow ends it there', async () => {
    const { r } = harness();
    const done: string[] = [];
    const stopper = step('hold', (_r, s) => Promise.resolve((s.push('hold'), { detail: 'not now', stop: true })));
    expect(await runSteps(r, done, [ok('a'), ok('b'), stopper, ok('never')])).toBe('stopped');
    expect(done).toEqual(['a', 'b', 'hold']);
  });

  it('the deadline: a run whose signal aborts stops before the next step, not inside it', async () => {
    const ctl = new AbortController();
    const { r, events } = harness(ctl.signal);
    const done: string[] = [];
    const abortAfter = step('b', (_r, s) => Promise.resolve((s.push('b'), ctl.abort(new Error('deadline')), { detail: 'b' })));
    await expect(runSteps(r, done, [ok('a'), abortAfter, ok('c')])).rejects.toThrow('deadline');
    expect(done).toEqual(['a', 'b']);
    expect(events.filter((e) => e.status === 'ok').map((e) => e.step)).toEqual(['a', 'b']);
  });

  it('a step started beside is cancelled and waited for when a later step fails', async () => {
    const { r } = harness();
    const seen: string[] = [];
    const slow = step('side', (_r, s, signal) => new Promise((resolve, reject) => {
      const t = setTimeout(() => resolve({ detail: 'finished' }), 10_000);
      signal?.addEventListener('abort', () => {
        clearTimeout(t);
        s.push('side cancelled');
        reject(new Error('cancelled'));
      });
    }));
    const boom = step('boom', () => Promise.reject(new FlowFailure('boom', 'it broke', 'fix it')));
    await expect(runSteps(r, seen, [beside(slow), ok('a'), boom, join(slow)])).rejects.toThrow('it broke');
    // Cancelled before runSteps gave up: nothing of the run outlives it.
    expect(seen).toEqual(['a', 'side cancelled']);
  });

  it('locks: held around their steps, re-checked on every beat; a lock taken over stops the run with LockLost', async () => {
    const { r, lock } = harness();
    const done: string[] = [];
    expect(await runSteps(r, done, [holding<string[]>('cluster lock', () => 'prod', ok('a'), ok('b'))])).toBe('done');
    expect(lock.owners.has('prod')).toBe(false); // released after
    const stolen = step('stolen', async (run, s) => {
      lock.steal('prod');
      s.push('stolen');
      await run.verifyLocks();
      return { detail: 'unreachable' };
    });
    await expect(runSteps(r, done, [holding<string[]>('cluster lock', () => 'prod', stolen, ok('never'))])).rejects.toBeInstanceOf(LockLost);
    expect(done).toEqual(['a', 'b', 'stolen']);
    expect(lock.owners.get('prod')).toBe('someone-else'); // not released from under its new owner
  });
});

describe('settle: the one failure tail, by the flow\'s outcome policy', () => {
  const failing = async (r: FlowRun, err: Error) => {
    await r.step('membership', () => Promise.reject(err)).catch(() => undefined);
    return r.settle(err, replacementOutcomes, 'check the logs');
  };

  it.each([
    ['no quorum: the replacement comes in awaiting DR', new FlowFailure('peer', 'no peer', 'restore', 'critical', 'no-quorum', { code: 'no-quorum' }), 'await-dr'],
    ['a new cluster that may not be seeded: awaiting DR too', new FlowFailure('bootstrap', 'data exists', 'adopt', 'critical', 'bootstrap-refused', { code: 'bootstrap-refused' }), 'await-dr'],
    ['any other failure: ABANDON', new FlowFailure('attach', 'volume busy', 'wait'), 'abandon'],
    ['an alert key alone routes nothing (it is no code)', new FlowFailure('peer', 'no peer', 'restore', 'critical', 'no-quorum'), 'abandon'],
  ])('%s', async (_name, err: FlowFailure, kind) => {
    expect(await failing(harness().r, err)).toMatchObject({ kind, failure: err });
  });

  it('an error that is no FlowFailure is `unexpected`, at the step that threw', async () => {
    const out = await failing(harness().r, new TypeError('undefined is not a function'));
    expect(out).toMatchObject({ kind: 'abandon', failure: { step: 'membership', code: 'unexpected', message: 'undefined is not a function', action: 'check the logs' } });
  });

  it('a lock lost: busy (the flow that took it decides), whatever the policy says', async () => {
    expect(await failing(harness().r, new LockLost('another flow took over prod'))).toEqual({ kind: 'busy', reason: 'another flow took over prod' });
  });

  it('stopped before the deadline: said, then re-thrown — no outcome, so no alert and no hook completed', () => {
    const ctl = new AbortController();
    const { r, events } = harness(ctl.signal);
    ctl.abort(new Error('deadline'));
    expect(() => r.settle(new Error('aborted'), replacementOutcomes, 'x')).toThrow('deadline');
    expect(events.at(-1)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/stopped before the Lambda deadline/) as unknown });
  });
});
