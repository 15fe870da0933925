'use strict';
/**
 * One sample of the quorum watch (sandbox/quorum-watch.ts), in plain CommonJS so that the same
 * code runs on the test's thread (unit tests, with a scripted gateway) and in the watch's own
 * worker thread (sandbox runs: a stall of the test process — a long GC, synchronous work — must
 * not leave the cluster unwatched, and under CI load it once opened a 6 s gap).
 *
 * Voters come from the member list of the first URL that answers (its own view: etcd 3.5's
 * linearizable list would time out in the very samples that matter). A voter is healthy when it
 * answers `maintenance/status` with a leader; one that answers without a leader is asked once more
 * 300 ms later before it counts as unhealthy (an election right after a leadership move lasts
 * milliseconds; a cluster without quorum stays leaderless).
 */
const RECHECK_MS = 300;

/**
 * @param {readonly string[]} urls client URLs to ask for the member list, in order
 * @param {(url: string, path: string, body?: string) => Promise<any>} gateway POST to etcd's v3 gateway; null: no answer
 */
async function sampleQuorum(urls, gateway) {
  let members = null;
  for (const url of urls) {
    members = (await gateway(url, '/v3/cluster/member/list', '{"linearizable":false}'))?.members ?? null;
    if (members) break;
  }
  if (!members) return { voters: 0, healthy: 0, silent: [], leaderless: [], elected: 0, listed: [] };
  const voters = members.filter((m) => !m.isLearner);
  const ask = async (m) => {
    const url = m.clientURLs?.[0];
    const st = url ? await gateway(url, '/v3/maintenance/status') : null;
    if (st === null || st === undefined) return 'silent';
    return st.leader !== undefined && st.leader !== '0' ? 'leader' : 'leaderless';
  };
  const first = await Promise.all(voters.map(ask));
  const quorum = Math.floor(voters.length / 2) + 1;
  let answers = first;
  if (first.filter((a) => a === 'leader').length < quorum && first.includes('leaderless')) {
    await new Promise((r) => setTimeout(r, RECHECK_MS));
    answers = await Promise.all(voters.map(async (m, i) => (first[i] === 'leaderless' ? ask(m) : first[i])));
  }
  const named = (kind) => voters.filter((_, i) => answers[i] === kind).map((m) => m.name || m.ID);
  return {
    voters: voters.length, healthy: answers.filter((a) => a === 'leader').length,
    silent: named('silent'), leaderless: named('leaderless'),
    elected: answers.filter((a, i) => a === 'leader' && first[i] === 'leaderless').length,
    listed: members.flatMap((m) => m.clientURLs ?? []),
  };
}

/**
 * The worker thread's body: samples every `everyMs` on its own event loop, learns members' client
 * URLs from the lists it reads (replacements join with new ones), and on `stop` answers with its
 * samples and the start time of each.
 */
function runWorker() {
  const { parentPort, workerData } = require('node:worker_threads');
  const { readFileSync } = require('node:fs');
  const { Agent, fetch } = require('undici');
  const tls = workerData.tls;
  const agent = tls ? new Agent({ connect: { ca: readFileSync(tls.cacert), cert: readFileSync(tls.cert), key: readFileSync(tls.key) } }) : null;
  const gateway = async (url, path, body = '{}') => {
    try {
      const r = await fetch(`${url}${path}`, { method: 'POST', body, signal: AbortSignal.timeout(2000), ...(agent && url.startsWith('https:') ? { dispatcher: agent } : {}) });
      return r.ok ? await r.json() : null;
    } catch {
      return null;
    }
  };
  let urls = [...workerData.urls];
  const samples = [];
  const starts = [];
  const inFlight = new Set();
  const timer = setInterval(() => {
    const at = Date.now();
    starts.push(at);
    const p = sampleQuorum(urls, gateway).then(({ listed, ...s }) => {
      samples.push({ at, ...s });
      urls = [...new Set([...urls, ...listed])];
    }).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, workerData.everyMs);
  parentPort.on('message', (m) => {
    if (!m.stop) return;
    clearInterval(timer);
    void Promise.all([...inFlight]).then(async () => {
      if (agent) await agent.close();
      parentPort.postMessage({ samples, starts });
    });
  });
}

module.exports = { sampleQuorum, runWorker, RECHECK_MS };
