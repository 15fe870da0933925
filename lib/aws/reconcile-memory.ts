/**
 * What the reconciler remembers between runs: when it first saw each stray etcd member, each
 * `Pending:Wait` instance and each master awaiting repair, so grace periods count from the first
 * sighting, not from the current run. One DynamoDB item per cluster in the state table, `reconcile#<cluster>`,
 * expiring a day after the last run. Only what the last run still saw is kept: a stray that
 * disappears and comes back starts its grace again.
 */
import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';
import { isSeenKey } from '../domain/reconcile';

export interface ReconcileMemory {
  get(cluster: string): Promise<Record<string, number>>;
  put(cluster: string, seen: Readonly<Record<string, number>>): Promise<void>;
}

/** Keys are the plan's (`isSeenKey`: `pending#<instance>`, `repair#<instance>`, `stray#<member id>`); values epoch ms. Anything else is dropped. */
function parseSeen(text: string | undefined): Record<string, number> {
  if (!text) return {};
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return {};
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (isSeenKey(k) && typeof v === 'number' && Number.isSafeInteger(v) && v > 0) out[k] = v;
  }
  return out;
}

export function dynamoReconcileMemory(ddb: DynamoDBClient, table: string, clock: Clock): ReconcileMemory {
  const key = (cluster: string) => ({ pk: { S: `reconcile#${cluster}` } });
  return {
    async get(cluster) {
      const r = await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster), ConsistentRead: true }));
      return parseSeen(r.Item?.seen?.S);
    },
    async put(cluster, seen) {
      const ttl = Math.floor((await wallNow(clock)) / 1000) + 86_400;
      await ddb.send(new PutItemCommand({ TableName: table, Item: { ...key(cluster), seen: { S: JSON.stringify(seen) }, ttl: { N: String(ttl) } } }));
    },
  };
}
