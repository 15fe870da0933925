import { ServerClock } from '../../lib/aws/server-clock';

const T = Date.UTC(2026, 11, 2, 12, 0, 0);
const at = (ms: number) => ({ now: () => ms, sleep: () => Promise.resolve() });

describe('ServerClock: wall time from the Date header of AWS responses', () => {
  it('a clock 3 h fast is corrected from the first response; durations keep the local clock', async () => {
    const local = T + 3 * 3_600_000;
    const c = new ServerClock(at(local), () => Promise.resolve());
    c.observe(new Date(T).toUTCString(), local);
    expect(Math.abs((await c.wallNow()) - T)).toBeLessThanOrEqual(1000);
    expect(c.now()).toBe(local);
  });

  it('within the header\'s one-second resolution the local clock is kept, and jitter never moves a learnt offset', async () => {
    const c = new ServerClock(at(T), () => Promise.resolve());
    c.observe(new Date(T - 900).toUTCString(), T);
    expect(c.offset).toBe(0);
    expect(await c.wallNow()).toBe(T);
    const fast = new ServerClock(at(T + 600_000), () => Promise.resolve());
    fast.observe(new Date(T).toUTCString(), T + 600_000);
    const first = fast.offset!;
    fast.observe(new Date(T + 1000).toUTCString(), T + 600_000 + 400);
    expect(fast.offset).toBe(first);
  });

  it('before any response it asks once (the probe), and an unanswerable probe leaves the local clock', async () => {
    let probes = 0;
    const c: ServerClock = new ServerClock(at(T + 60_000), () => {
      probes++;
      c.observe(new Date(T).toUTCString(), T + 60_000);
      return Promise.resolve();
    });
    expect(Math.abs((await c.wallNow()) - T)).toBeLessThanOrEqual(1000);
    await c.wallNow();
    expect(probes).toBe(1);
    const offline = new ServerClock(at(T), () => Promise.reject(new Error('no network')));
    expect(await offline.wallNow()).toBe(T);
  });

  it('a failing probe is not repeated on every call: concurrent callers share one, and the next waits a minute', async () => {
    let probes = 0;
    let local = T;
    const c = new ServerClock({ now: () => local, sleep: () => Promise.resolve() }, () => {
      probes++;
      return Promise.reject(new Error('no network'));
    });
    await Promise.all([c.wallNow(), c.wallNow(), c.wallNow()]);
    await c.wallNow();
    expect(probes).toBe(1);
    local += 61_000;
    expect(await c.wallNow()).toBe(local);
    expect(probes).toBe(2);
  });
});
