import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { postToSlack, SlackError } from '../../lib/notify/slack';

const clock = { now: () => Date.now(), sleep: (ms: number) => { slept.push(ms); return Promise.resolve(); } };
let slept: number[] = [];

async function slack(answers: Array<[number, Record<string, string>?]>): Promise<{ url: string; hits: () => number; close: () => void }> {
  let hits = 0;
  const server = createServer((_req, res) => {
    const [status, headers] = answers[Math.min(hits, answers.length - 1)]!;
    hits++;
    res.writeHead(status, headers ?? {}).end(status === 200 ? 'ok' : 'error');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, hits: () => hits, close: () => server.close() };
}

describe('postToSlack', () => {
  beforeEach(() => (slept = []));

  it('retries 5xx and 429 (honouring Retry-After), then succeeds', async () => {
    const s = await slack([[503], [429, { 'retry-after': '3' }], [200]]);
    try {
      expect(await postToSlack(s.url, { text: 'x' }, { clock, baseDelayMs: 100 })).toEqual({ attempts: 3 });
      expect(s.hits()).toBe(3);
      expect(slept[1]).toBe(3000);
    } finally {
      s.close();
    }
  });

  it('does not retry a refused message (4xx): a revoked webhook is a configuration error', async () => {
    const s = await slack([[404]]);
    try {
      await expect(postToSlack(s.url, { text: 'x' }, { clock })).rejects.toMatchObject({ name: 'SlackError', retryable: false, attempts: 1 });
      expect(s.hits()).toBe(1);
    } finally {
      s.close();
    }
  });

  it('gives up after the last attempt with what Slack said', async () => {
    const s = await slack([[500]]);
    try {
      const err = await postToSlack(s.url, { text: 'x' }, { clock, attempts: 3, baseDelayMs: 10 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SlackError);
      expect((err as SlackError).message).toMatch(/after 3 attempts \(last: HTTP 500 error\)/);
      expect(slept).toHaveLength(2);
    } finally {
      s.close();
    }
  });
});
