/**
 * Which etcd member each master slot is, by member ID (DESIGN.md: a member belongs to a slot by
 * its recorded identity, not only by its name). One item per slot in the state table,
 * `member#<cluster>/<slot>`, written when a replacement has brought its member in and caught up,
 * and when the reconciler maps a member to its slot by name or by the slot master's peer URL.
 * Never expires: identity outlives every run. A record naming a member that is no longer in the
 * cluster is simply not used (the slot is then claimed by name or peer URL again).
 */
import { type DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { type Clock, wallNow } from '../clock';

export interface MemberIds {
  /** The recorded member ID of each of `slots` that has one (hex, as etcd prints it). */
  get(cluster: string, slots: readonly string[]): Promise<Record<string, string>>;
  record(cluster: string, slot: string, memberId: string, how: string): Promise<void>;
}

const MEMBER_ID = /^[0-9a-f]{1,16}$/;

export function dynamoMemberIds(ddb: DynamoDBClient, table: string, clock: Clock): MemberIds {
  const key = (cluster: string, slot: string) => ({ pk: { S: `member#${cluster}/${slot}` } });
  return {
    async get(cluster, slots) {
      const out: Record<string, string> = {};
      await Promise.all(slots.map(async (slot) => {
        const r = await ddb.send(new GetItemCommand({ TableName: table, Key: key(cluster, slot), ConsistentRead: true }));
        const id = r.Item?.memberId?.S;
        if (id !== undefined && MEMBER_ID.test(id)) out[slot] = id;
      }));
      return out;
    },
    async record(cluster, slot, memberId, how) {
      if (!MEMBER_ID.test(memberId)) throw new Error(`not an etcd member ID: ${memberId.slice(0, 40)}`);
      await ddb.send(new UpdateItemCommand({
        TableName: table, Key: key(cluster, slot),
        UpdateExpression: 'SET memberId = :id, how = :how, #at = :at',
        ExpressionAttributeNames: { '#at': 'at' },
        ExpressionAttributeValues: { ':id': { S: memberId }, ':how': { S: how.slice(0, 200) }, ':at': { N: String(await wallNow(clock)) } },
      }));
    },
  };
}
