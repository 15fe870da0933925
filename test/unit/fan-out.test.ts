/**
 * Which clusters a scheduled function runs itself and which it hands off (functions/fan-out.ts),
 * over a Lambda client that records what it was asked (the sandbox one is exercised in
 * backup-handler.test.ts): a named request never hands off, so handing off cannot recurse.
 */
import type { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { Logger } from '@aws-lambda-powertools/logger';
import { planRun } from '../../functions/fan-out';

function lambda(refuse: string[] = []): { client: () => LambdaClient; sent: Array<{ fn: string; type: string; payload: unknown }> } {
  const sent: Array<{ fn: string; type: string; payload: unknown }> = [];
  const client = {
    send: (cmd: InvokeCommand) => {
      const payload = JSON.parse(Buffer.from(cmd.input.Payload as Uint8Array).toString()) as { clusters: string[] };
      if (refuse.includes(payload.clusters[0]!)) return Promise.reject(new Error('Rate Exceeded.'));
      sent.push({ fn: String(cmd.input.FunctionName), type: String(cmd.input.InvocationType), payload });
      return Promise.resolve({ StatusCode: 202 });
    },
  } as unknown as LambdaClient;
  return { client: () => client, sent };
}

const logger = new Logger({ logLevel: 'SILENT' });
const fan = (l: ReturnType<typeof lambda>, clusters: string[]) => ({ lambda: l.client, functionName: 'qk-prod-reconcile', logger, listClusters: () => Promise.resolve(clusters) });

describe('planRun', () => {
  it('hands each cluster found to an async invocation of this function, carrying dryRun', async () => {
    const l = lambda();
    expect(await planRun({ dryRun: true }, fan(l, ['a', 'b', 'c']))).toEqual({ here: [], handedOff: ['a', 'b', 'c'] });
    expect(l.sent.sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual(['a', 'b', 'c'].map((c) => ({ fn: 'qk-prod-reconcile', type: 'Event', payload: { clusters: [c], dryRun: true } })));
  });

  it('runs in place what a request names (never hands off again) and a single cluster found', async () => {
    const l = lambda();
    expect(await planRun({ clusters: ['a', 'b'] }, fan(l, ['a', 'b', 'c']))).toEqual({ here: ['a', 'b'], handedOff: [] });
    expect(await planRun({}, fan(l, ['a']))).toEqual({ here: ['a'], handedOff: [] });
    expect(await planRun({}, fan(l, []))).toEqual({ here: [], handedOff: [] });
    expect(l.sent).toEqual([]);
  });

  it('a cluster Lambda would not take is run in place', async () => {
    const l = lambda(['b']);
    expect(await planRun({}, fan(l, ['a', 'b', 'c']))).toEqual({ here: ['b'], handedOff: ['a', 'c'] });
  });
});
