/**
 * What a probe remembers about a cluster until the next one (raft term and leader, to count
 * elections; the highest revision seen, for a recovery's count of revisions lost): one DynamoDB item per cluster in the state table, `probe#<cluster>`, expiring
 * after a day without probes.
 */
import { type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';
import type { ProbeMemory } from '../domain/health';

/** Where a probe keeps what it remembers (as ReconcileMemory does for the reconciler). */
export interface ProbeMemoryStore {
  get(cluster: string): Promise<ProbeMemory | null>;
  put(cluster: string, memory: ProbeMemory): Promise<void>;
}

export function dynamoProbeMemory(ddb: DynamoDBClient, table: string, clock: Clock): ProbeMemoryStore {
  return {
    async get(cluster) {
      const r = await ddb.send(new GetItemCommand({ TableName: table, Key: { pk: { S: `probe#${cluster}` } }, ConsistentRead: true }));
      const term = Number(r.Item?.raftTerm?.N);
      if (!r.Item || !Number.isSafeInteger(term)) return null;
      let leases: ProbeMemory['leases'];
      try {
        leases = r.Item.leases?.S ? (JSON.parse(r.Item.leases.S) as ProbeMemory['leases']) : undefined;
      } catch {
        leases = undefined;
      }
      const highest = Number(r.Item.highestRevision?.N);
      return { raftTerm: term, leaderId: r.Item.leaderId?.S ?? null, ...(leases ? { leases } : {}), ...(Number.isSafeInteger(highest) && highest > 0 ? { highestRevision: highest } : {}) };
    },
    async put(cluster, m) {
      const ttl = Math.floor((await wallNow(clock)) / 1000) + 86_400;
      await ddb.send(new PutItemCommand({
        TableName: table,
        Item: {
          pk: { S: `probe#${cluster}` }, raftTerm: { N: String(m.raftTerm) }, ...(m.leaderId ? { leaderId: { S: m.leaderId } } : {}),
          ...(m.leases ? { leases: { S: JSON.stringify(m.leases) } } : {}), ...(m.highestRevision ? { highestRevision: { N: String(m.highestRevision) } } : {}), ttl: { N: String(ttl) },
        },
      }));
    },
  };
}
