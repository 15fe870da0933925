/**
 * Issue 9 in every scenario: a continuous writer per scenario, checked for zero acknowledged
 * writes lost, with the availability gaps collected for one log block per test file.
 */
import type { Sandbox } from '../../sandbox/sandbox';
import { AckWriter, formatReport } from '../../sandbox/writer';

export interface WriterKit {
  start(label: string): AckWriter;
  /** Stops the writer, reads everything back: 0 acknowledged-but-missing, something acknowledged. */
  check(w: AckWriter, label: string): Promise<void>;
  /** For afterEach: stops writers a failed test left running. */
  stopAll(): Promise<void>;
  /** For afterAll: the gap per scenario. */
  report(): void;
}

export function writerKit(sandbox: () => Sandbox): WriterKit {
  const gaps: string[] = [];
  const writers: AckWriter[] = [];
  return {
    start(label) {
      const w = new AckWriter(() => [...sandbox().hosts.values()].map((h) => h.clientUrl), { prefix: `/qk-writer/${label}/` }).start();
      writers.push(w);
      return w;
    },
    async check(w, label) {
      const r = await w.verify();
      gaps.push(`${label}: ${formatReport(r)}`);
      expect(r.acknowledgedButMissing).toBe(0);
      expect(r.acknowledged).toBeGreaterThan(0);
    },
    async stopAll() {
      await Promise.all(writers.splice(0).map((w) => w.stop()));
    },
    report() {
      if (gaps.length) console.log(`continuous writer, per scenario:\n${gaps.join('\n')}`);
    },
  };
}
