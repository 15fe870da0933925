/**
 * The restore's journal in the state table, `restore#<cluster>`: which snapshot, which cluster
 * token, when it began. Written once the restore starts changing masters
 * (under the cluster lock), removed when it ends — restored, or rolled back. A restore run again
 * after an interruption at any point finds it and goes on with the same snapshot and token: every
 * host step is idempotent per token, and each member's pre-restore data sits aside under that one
 * token, so a rollback puts back the same data everywhere. Never expires by itself (an
 * interrupted restore waits for an operator however long that takes).
 */
import { DeleteItemCommand, type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';

export interface RestoreJournalEntry {
  cluster: string;
  token: string;
  snapshotKey: string;
  /** Epoch ms. */
  startedAt: number;
}

export interface RestoreJournal {
  get(cluster: string): Promise<RestoreJournalEntry | null>;
  begin(e: Omit<RestoreJournalEntry, 'startedAt'>): Promise<RestoreJournalEntry>;
  end(cluster: string): Promise<void>;
}

export function dynamoRestoreJournal(ddb: DynamoDBClient, table: string, clock: Clock): RestoreJournal {
  const key = (cluster: string) => ({ pk: { S: `restore#${cluster}` } });
  return {
    async get(cluster) {
      const it = (await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster), ConsistentRead: true }))).Item;
      if (!it?.token?.S || !it.snapshotKey?.S) return null;
      return { cluster, token: it.token.S, snapshotKey: it.snapshotKey.S, startedAt: Number(it.startedAt?.N ?? 0) };
    },
    async begin(e) {
      const startedAt = await wallNow(clock);
      await ddb.send(new PutItemCommand({
        TableName: table,
        Item: { ...key(e.cluster), token: { S: e.token }, snapshotKey: { S: e.snapshotKey }, startedAt: { N: String(startedAt) } },
      }));
      return { ...e, startedAt };
    },
    async end(cluster) {
      await ddb.send(new DeleteItemCommand({ TableName: table, Key: key(cluster) }));
    },
  };
}
