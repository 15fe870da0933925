/**
 * Per-cluster lock: a DynamoDB item written with a conditional put and an expiry, so only one
 * membership change runs per cluster at a time and a crashed holder cannot block forever.
 * Item: { pk: "lock#<cluster>", owner, expiresAt (epoch s), ttl }.
 */
import { randomUUID } from 'node:crypto';
import { ConditionalCheckFailedException, DeleteItemCommand, type DynamoDBClient, GetItemCommand, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';

/**
 * The one lock TTL: how long a lock outlives a holder that died without releasing it. Holders
 * extend their locks with every heartbeat (30 s), but one SSM command can be waited on for up
 * to 600 s without a heartbeat in between; 900 s covers that and equals Lambda's longest run,
 * so a holder killed with its invocation has freed the lock by the time anything retries long.
 */
export const LOCK_TTL_SEC = 900;

export interface LockOptions {
  table: string;
}

export class ClusterLock {
  constructor(
    private readonly ddb: DynamoDBClient,
    private readonly clock: Clock,
    private readonly opts: LockOptions,
  ) {}

  /** True when `owner` now holds the lock (re-acquiring one's own lock extends it). */
  tryAcquire(cluster: string, owner: string): Promise<boolean> {
    return this.put(cluster, owner, 'attribute_not_exists(pk) OR expiresAt < :now OR #owner = :owner');
  }

  /**
   * Extends a lock `owner` holds; false when it is not theirs any more (taken over, or released:
   * an extension never re-creates a lock, so a late heartbeat cannot take a released lock back).
   */
  async extend(cluster: string, owner: string): Promise<boolean> {
    if (await this.put(cluster, owner, 'attribute_exists(pk) AND #owner = :owner')) return true;
    // Losing a lock stops a flow mid-change: a failed condition is confirmed by one consistent
    // read before the lock counts as lost (it is, unless the item still names this owner).
    return (await this.ownerOf(cluster)) === owner;
  }

  private async ownerOf(cluster: string): Promise<string | null> {
    const r = await this.ddb.send(new GetItemCommand({ TableName: this.opts.table, Key: { pk: { S: `lock#${cluster}` } }, ConsistentRead: true }));
    return r.Item?.owner?.S ?? null;
  }

  private async put(cluster: string, owner: string, condition: string): Promise<boolean> {
    const now = Math.floor((await wallNow(this.clock)) / 1000);
    const ttl = LOCK_TTL_SEC;
    try {
      await this.ddb.send(new PutItemCommand({
        TableName: this.opts.table,
        Item: { pk: { S: `lock#${cluster}` }, owner: { S: owner }, expiresAt: { N: String(now + ttl) }, ttl: { N: String(now + ttl + 3600) } },
        ConditionExpression: condition,
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ...(condition.includes(':now') ? { ':now': { N: String(now) } } : {}), ':owner': { S: owner } },
      }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }

  /** Whether someone holds the cluster's lock right now (read-only; for plans and status). */
  async isHeld(cluster: string): Promise<boolean> {
    const r = await this.ddb.send(new GetItemCommand({ TableName: this.opts.table, Key: { pk: { S: `lock#${cluster}` } }, ConsistentRead: true }));
    return Number(r.Item?.expiresAt?.N ?? 0) >= Math.floor((await wallNow(this.clock)) / 1000);
  }

  async release(cluster: string, owner: string): Promise<void> {
    try {
      await this.ddb.send(new DeleteItemCommand({
        TableName: this.opts.table,
        Key: { pk: { S: `lock#${cluster}` } },
        ConditionExpression: '#owner = :owner',
        ExpressionAttributeNames: { '#owner': 'owner' },
        ExpressionAttributeValues: { ':owner': { S: owner } },
      }));
    } catch (err) {
      if (!(err instanceof ConditionalCheckFailedException)) throw err;
    }
  }

  /** Gives a claim back (a notification that could not be delivered must be retried, not de-duplicated). */
  async releaseOnce(key: string): Promise<void> {
    await this.ddb.send(new DeleteItemCommand({ TableName: this.opts.table, Key: { pk: { S: `once#${key}` } } }));
  }

  /**
   * Claims `key` once per window (for alert de-duplication): true the first time, false while
   * an earlier claim is younger than `windowSec`.
   */
  async claimOnce(key: string, windowSec: number): Promise<boolean> {
    const now = Math.floor((await wallNow(this.clock)) / 1000);
    // The claim carries its own ID: if DynamoDB wrote it but the answer was lost, the SDK's retry
    // of this same request finds its own claim and succeeds (instead of swallowing the alert).
    const claim = randomUUID();
    try {
      await this.ddb.send(new PutItemCommand({
        TableName: this.opts.table,
        Item: { pk: { S: `once#${key}` }, claim: { S: claim }, expiresAt: { N: String(now + windowSec) }, ttl: { N: String(now + windowSec + 3600) } },
        ConditionExpression: 'attribute_not_exists(pk) OR expiresAt < :now OR claim = :claim',
        ExpressionAttributeValues: { ':now': { N: String(now) }, ':claim': { S: claim } },
      }));
      return true;
    } catch (err) {
      if (err instanceof ConditionalCheckFailedException) return false;
      throw err;
    }
  }
}
