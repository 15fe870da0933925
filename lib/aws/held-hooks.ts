/**
 * Lifecycle hooks a retirement holds because leaving is not safe yet (DESIGN.md: a hook held
 * for safety is kept alive until leaving is safe). One item per slot in the state table,
 * `held#<cluster>/<member>`: which instance and hook, since when (kept from the first hold, so
 * the hook's global limit — 48 h or 100 × its heartbeat timeout — is counted from there), the
 * hook's heartbeat timeout and the last reason. The flow writes it when it holds and deletes it
 * when the retirement ends; the reconciler re-drives held retirements and reads `since`.
 */
import { DeleteItemCommand, type DynamoDBClient, GetItemCommand, UpdateItemCommand, ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';

export interface HeldHook {
  cluster: string;
  member: string;
  instanceId: string;
  hook: string;
  /** Epoch ms of the first hold of this instance's hook. */
  since: number;
  heartbeatTimeoutSec: number;
  reason: string;
}

export interface HeldHooks {
  /** Records (or refreshes) a hold; returns the record with its original `since`. */
  hold(h: Omit<HeldHook, 'since'>): Promise<HeldHook>;
  /** Forgets the hold of `instanceId` (a later instance's hold is left alone). */
  release(cluster: string, member: string, instanceId: string): Promise<void>;
  /** The slot's hold, if any (what `status` shows). */
  get(cluster: string, member: string): Promise<HeldHook | null>;
}

export function dynamoHeldHooks(ddb: DynamoDBClient, table: string, clock: Clock): HeldHooks {
  const key = (cluster: string, member: string) => ({ pk: { S: `held#${cluster}/${member}` } });
  return {
    async hold(h) {
      const now = await wallNow(clock);
      const put = (sameInstance: boolean) => ddb.send(new UpdateItemCommand({
        TableName: table, Key: key(h.cluster, h.member), ReturnValues: 'ALL_NEW',
        // A hold of another (earlier) instance is replaced, its `since` with it.
        UpdateExpression: `SET instanceId = :i, hook = :h, hbt = :t, reason = :r, since = ${sameInstance ? 'if_not_exists(since, :now)' : ':now'}, #ttl = :ttl`,
        ...(sameInstance ? { ConditionExpression: 'attribute_not_exists(pk) OR instanceId = :i' } : {}),
        ExpressionAttributeNames: { '#ttl': 'ttl' },
        ExpressionAttributeValues: {
          ':i': { S: h.instanceId }, ':h': { S: h.hook }, ':t': { N: String(h.heartbeatTimeoutSec) }, ':r': { S: h.reason.slice(0, 500) },
          ':now': { N: String(now) }, ':ttl': { N: String(Math.floor(now / 1000) + 3 * 86_400) },
        },
      }));
      let out;
      try {
        out = await put(true);
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
        out = await put(false);
      }
      return { ...h, since: Number(out.Attributes?.since?.N ?? now) };
    },
    async get(cluster, member) {
      const it = (await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster, member), ConsistentRead: true }))).Item;
      if (!it?.instanceId?.S) return null;
      return {
        cluster, member, instanceId: it.instanceId.S, hook: it.hook?.S ?? '', since: Number(it.since?.N ?? 0),
        heartbeatTimeoutSec: Number(it.hbt?.N ?? 0), reason: it.reason?.S ?? '',
      };
    },
    async release(cluster, member, instanceId) {
      try {
        await ddb.send(new DeleteItemCommand({
          TableName: table, Key: key(cluster, member), ConditionExpression: 'instanceId = :i', ExpressionAttributeValues: { ':i': { S: instanceId } },
        }));
      } catch (err) {
        if (!(err instanceof ConditionalCheckFailedException)) throw err;
      }
    },
  };
}

/**
 * Slots awaiting disaster recovery: a replacement that found no quorum brought its master in
 * with the volume mounted and etcd left stopped (so `restore` can run, and the reconciler can
 * bring it in once quorum is back). One item per slot, `dr#<cluster>/<member>`.
 */
export interface AwaitingDr {
  mark(r: { cluster: string; member: string; instanceId: string; hasData: boolean }): Promise<void>;
  clear(cluster: string, member: string): Promise<void>;
  /** The slot's record, if it awaits DR (what `status` shows). */
  get(cluster: string, member: string): Promise<{ instanceId: string; hasData: boolean; since: number } | null>;
}

export function dynamoAwaitingDr(ddb: DynamoDBClient, table: string, clock: Clock): AwaitingDr {
  const key = (cluster: string, member: string) => ({ pk: { S: `dr#${cluster}/${member}` } });
  return {
    async mark(r) {
      const now = await wallNow(clock);
      await ddb.send(new UpdateItemCommand({
        TableName: table, Key: key(r.cluster, r.member),
        UpdateExpression: 'SET instanceId = :i, hasData = :d, since = if_not_exists(since, :now), #ttl = :ttl',
        ExpressionAttributeNames: { '#ttl': 'ttl' },
        ExpressionAttributeValues: { ':i': { S: r.instanceId }, ':d': { BOOL: r.hasData }, ':now': { N: String(now) }, ':ttl': { N: String(Math.floor(now / 1000) + 30 * 86_400) } },
      }));
    },
    async clear(cluster, member) {
      await ddb.send(new DeleteItemCommand({ TableName: table, Key: key(cluster, member) }));
    },
    async get(cluster, member) {
      const it = (await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster, member), ConsistentRead: true }))).Item;
      return it?.instanceId?.S ? { instanceId: it.instanceId.S, hasData: it.hasData?.BOOL === true, since: Number(it.since?.N ?? 0) } : null;
    },
  };
}
