/**
 * The quorum watch's judgement, over a scripted etcd gateway: a voter caught mid-election (no
 * leader, then one 300 ms later) is not a lost quorum; a voter that stays leaderless or does not
 * answer is, and each is named. (The real-etcd side — leadership moved, members killed — is in
 * the sandbox suite; an election lasts milliseconds there, too short to hit on purpose.)
 */
import { QuorumWatch, type GatewayPost } from '../../sandbox/quorum-watch';

const members = ['a', 'b', 'c'].map((n, i) => ({ ID: String(i + 1), name: `etcd-${n}`, clientURLs: [`http://${n}`] }));
const hosts = new Map(members.map((m) => [m.name, { clientUrl: m.clientURLs[0]! }]));

/** Each member's status answers in turn (the last one repeats); null is no answer. */
function gateway(script: Record<string, Array<string | null>>): GatewayPost {
  const asked = new Map<string, number>();
  return <T>(url: string, path: string): Promise<T | null> => {
    if (path === '/v3/cluster/member/list') return Promise.resolve({ members } as T);
    const n = asked.get(url) ?? 0;
    asked.set(url, n + 1);
    const answers = script[url] ?? ['1'];
    const leader = answers[Math.min(n, answers.length - 1)];
    return Promise.resolve(leader === null || leader === undefined ? null : ({ leader } as T));
  };
}

async function oneSample(script: Record<string, Array<string | null>>) {
  const w = new QuorumWatch({ hosts }, gateway(script)).start();
  await new Promise((r) => setTimeout(r, 900));
  return w.stop();
}

describe('quorum watch', () => {
  it('a voter that answers without a leader and has one 300 ms later is an election, not a lost quorum', async () => {
    // etcd-a stopped for a retirement, etcd-c caught between terms right after the leadership move.
    const q = await oneSample({ 'http://a': [null], 'http://c': ['0', '2'] });
    expect(q.belowQuorum).toEqual([]);
    expect(q.minHealthy).toBe(2);
    expect(q.elections).toBe(1);
  });

  it('a voter still without a leader when asked again is unhealthy; one that does not answer is too; both are named', async () => {
    const q = await oneSample({ 'http://a': [null], 'http://c': ['0'] });
    expect(q.belowQuorum).toHaveLength(1);
    expect(q.belowQuorum[0]).toMatchObject({ voters: 3, healthy: 1, silent: ['etcd-a'], leaderless: ['etcd-c'], elected: 0 });
    expect(q.elections).toBe(0);
  });
});
