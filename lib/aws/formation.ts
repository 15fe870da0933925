/**
 * Whether a cluster was ever formed, in the state table: the fence that lets exactly one slot
 * seed a new cluster (DESIGN.md, bootstrap from nothing). One item per cluster,
 * `formed#<cluster>`:
 *   - written `seeding` by a conditional put (attribute_not_exists): of the masters of a new
 *     cluster that race for it, exactly one wins and seeds; the others join it;
 *   - turned `formed` with the etcd cluster ID once the seed answers (bootstrap), or at once by
 *     `adopt` (a cluster built before Quorum Keeper).
 * Never expires and is never deleted by a flow: once a cluster has existed, a master that finds
 * no etcd member answering is a disaster to recover from (restore), never a cluster to seed.
 *
 * Beside it, per slot, `bootstrap#<cluster>/<slot>`: what the slot's master found on its volume
 * when no member answered (blank or not, which volume, which instance). The seed is claimed only
 * when every slot has reported its current volume blank. Kept a day (TTL): a report is only a
 * reading, and an old one about a volume since reused must not count.
 */
import { ConditionalCheckFailedException, type DynamoDBClient, GetItemCommand, PutItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';

export interface FormationRecord {
  cluster: string;
  state: 'seeding' | 'formed';
  /** The slot that seeded (bootstrap); `adopt` or `observed` otherwise. */
  seed: string;
  /** The seed's instance (bootstrap only). */
  instanceId: string | null;
  /**
   * The volume the seed claimed with (bootstrap only; null in records written before 0.3): the
   * fence is bound to it — seeding resumes only on that volume, never on another slot volume.
   */
  volumeId: string | null;
  /** etcd's cluster ID (hex), once known. */
  clusterId: string | null;
  /**
   * bootstrap: seeded by Quorum Keeper; adopt: taken over by `quorum-keeper adopt`; observed: a
   * running cluster a replacement joined before the record existed (Quorum Keeper before 0.2).
   */
  how: 'bootstrap' | 'adopt' | 'observed';
  /** Epoch ms of the claim. */
  at: number;
}

export interface SlotReport {
  slot: string;
  volumeId: string;
  instanceId: string;
  /** The volume held no etcd data and no recorded member ID when its master mounted it. */
  blank: boolean;
  /** Epoch ms. */
  at: number;
}

export interface Formation {
  get(cluster: string): Promise<FormationRecord | null>;
  /** Claims the seed for `seed` on `instanceId` with its volume `volumeId`; false when a record exists already (someone else won, or the cluster exists). */
  claim(cluster: string, seed: string, instanceId: string, volumeId: string): Promise<boolean>;
  /**
   * Records the cluster as formed with its etcd cluster ID. Bootstrap: only the seeding record
   * of `seed` is turned (false otherwise); adopt and observed: written unless a record names
   * another cluster ID (false then).
   */
  formed(cluster: string, clusterId: string, seed: string, how: FormationRecord['how']): Promise<boolean>;
  report(cluster: string, r: Omit<SlotReport, 'at'>): Promise<void>;
  reports(cluster: string, slots: readonly string[]): Promise<SlotReport[]>;
}

const HEX = /^[0-9a-f]{1,16}$/;

export function dynamoFormation(ddb: DynamoDBClient, table: string, clock: Clock): Formation {
  const key = (cluster: string) => ({ pk: { S: `formed#${cluster}` } });
  const reportKey = (cluster: string, slot: string) => ({ pk: { S: `bootstrap#${cluster}/${slot}` } });
  return {
    async get(cluster) {
      const it = (await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster), ConsistentRead: true }))).Item;
      if (!it) return null;
      const state = it.state?.S === 'formed' ? 'formed' : 'seeding';
      return {
        cluster, state, seed: it.seed?.S ?? '', instanceId: it.instanceId?.S ?? null, volumeId: it.volumeId?.S ?? null, clusterId: it.clusterId?.S ?? null,
        how: it.how?.S === 'adopt' || it.how?.S === 'observed' ? it.how.S : 'bootstrap', at: Number(it.at?.N ?? 0),
      };
    },
    async claim(cluster, seed, instanceId, volumeId) {
      try {
        await ddb.send(new PutItemCommand({
          TableName: table, ConditionExpression: 'attribute_not_exists(pk)',
          Item: { ...key(cluster), state: { S: 'seeding' }, seed: { S: seed }, instanceId: { S: instanceId }, volumeId: { S: volumeId }, how: { S: 'bootstrap' }, at: { N: String(await wallNow(clock)) } },
        }));
        return true;
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) return false;
        throw err;
      }
    },
    async formed(cluster, clusterId, seed, how) {
      if (!HEX.test(clusterId)) throw new Error(`not an etcd cluster ID: ${clusterId.slice(0, 40)}`);
      try {
        await ddb.send(new UpdateItemCommand({
          TableName: table, Key: key(cluster),
          UpdateExpression: 'SET #state = :formed, clusterId = :id, seed = if_not_exists(seed, :seed), how = if_not_exists(how, :how), #at = if_not_exists(#at, :now)',
          ConditionExpression: how !== 'bootstrap'
            ? 'attribute_not_exists(pk) OR attribute_not_exists(clusterId) OR clusterId = :id'
            : 'seed = :seed AND (attribute_not_exists(clusterId) OR clusterId = :id)',
          ExpressionAttributeNames: { '#state': 'state', '#at': 'at' },
          ExpressionAttributeValues: { ':formed': { S: 'formed' }, ':id': { S: clusterId }, ':seed': { S: seed }, ':how': { S: how }, ':now': { N: String(await wallNow(clock)) } },
        }));
        return true;
      } catch (err) {
        if (err instanceof ConditionalCheckFailedException) return false;
        throw err;
      }
    },
    async report(cluster, r) {
      const now = await wallNow(clock);
      await ddb.send(new PutItemCommand({
        TableName: table,
        Item: {
          ...reportKey(cluster, r.slot), volumeId: { S: r.volumeId }, instanceId: { S: r.instanceId }, blank: { BOOL: r.blank },
          at: { N: String(now) }, ttl: { N: String(Math.floor(now / 1000) + 86_400) },
        },
      }));
    },
    async reports(cluster, slots) {
      const out: SlotReport[] = [];
      await Promise.all(slots.map(async (slot) => {
        const it = (await ddb.send(new GetItemCommand({ TableName: table, Key: reportKey(cluster, slot), ConsistentRead: true }))).Item;
        if (!it?.volumeId?.S || !it.instanceId?.S) return;
        const at = Number(it.at?.N ?? 0);
        // DynamoDB deletes expired items within days, not at once: an expired one is not read.
        if (Number(it.ttl?.N ?? 0) * 1000 < (await wallNow(clock))) return;
        out.push({ slot, volumeId: it.volumeId.S, instanceId: it.instanceId.S, blank: it.blank?.BOOL === true, at });
      }));
      return out.sort((a, b) => a.slot.localeCompare(b.slot));
    },
  };
}
