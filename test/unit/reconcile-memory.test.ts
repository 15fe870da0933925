/**
 * The reconciler's memory round-trips through the state table (DynamoDB's Put/GetItem, here
 * mocked as a one-item table): every grace the plan counts is still counted on the next run.
 */
import { DynamoDBClient, GetItemCommand, PutItemCommand, type PutItemCommandInput } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { dynamoReconcileMemory } from '../../lib/aws/reconcile-memory';
import { DEFAULT_RECONCILE, planReconcile, type ReconcileWorld } from '../../lib/domain/reconcile';

const NOW = Date.UTC(2026, 11, 7, 12, 0, 0);
const MIN = 60_000;

describe('reconciler memory', () => {
  const ddb = mockClient(DynamoDBClient);
  const client = new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  let item: PutItemCommandInput['Item'];
  beforeEach(() => {
    ddb.reset();
    item = undefined;
    ddb.on(PutItemCommand).callsFake((input: PutItemCommandInput) => {
      item = input.Item;
      return {};
    });
    ddb.on(GetItemCommand).callsFake(() => ({ Item: item }));
  });

  /** etcd-b's master is not whole; a Pending:Wait instance waits in etcd-c's slot; a stray member d1 is in the list. */
  const world = (now: number, firstSeen: Record<string, number>): ReconcileWorld => ({
    cluster: 'prod', now, firstSeen, lockHeld: false, backupAgeSec: 600,
    slots: [
      { member: 'etcd-a', asg: 'prod-etcd-a', instances: [{ instanceId: 'i-a', lifecycleState: 'InService' }], master: { instanceId: 'i-a', gaps: [] } },
      { member: 'etcd-b', asg: 'prod-etcd-b', instances: [{ instanceId: 'i-b', lifecycleState: 'InService' }], master: { instanceId: 'i-b', gaps: ["etcd-b's master i-b is unused in the target group"] } },
      { member: 'etcd-c', asg: 'prod-etcd-c', instances: [{ instanceId: 'i-c', lifecycleState: 'InService' }, { instanceId: 'i-c2', lifecycleState: 'Pending:Wait' }], master: { instanceId: 'i-c', gaps: [] } },
    ],
    volumes: ['a', 'b', 'c'].map((h) => ({ member: `etcd-${h}`, volumeId: `vol-${h}`, state: 'in-use', attachedTo: `i-${h}`, attachedInstanceState: 'running' })),
    etcd: {
      members: [{ id: 'a1', name: 'etcd-a', isLearner: false }, { id: 'b1', name: 'etcd-b', isLearner: false }, { id: 'c1', name: 'etcd-c', isLearner: false }, { id: 'd1', name: 'old', isLearner: false }],
      leader: 'a1', healthyIds: ['a1', 'b1', 'c1'],
    },
  });

  it('keeps every first sighting the plan counts a grace from (repair, pending, stray), so the grace ends and the action comes', async () => {
    const memory = dynamoReconcileMemory(client, 'qk-state', { now: () => NOW, sleep: () => Promise.resolve() });
    const first = planReconcile(world(NOW, await memory.get('prod')));
    expect(Object.keys(first.seen).sort()).toEqual(['pending#i-c2', 'repair#i-b', 'stray#d1']);
    expect(first.actions.filter((a) => a.kind !== 'alert')).toEqual([]); // all within their grace
    await memory.put('prod', first.seen);

    // A later run: what it reads back is what the first run saw, so every grace has run out.
    const remembered = await memory.get('prod');
    expect(remembered).toEqual(first.seen);
    const later = planReconcile(world(NOW + 20 * MIN, remembered), DEFAULT_RECONCILE);
    expect(later.actions.map((a) => a.kind).sort()).toEqual(['redrive-replacement', 'remove-stray', 'repair-master']);
  });

  it('drops what is not a first sighting (hand-edited or foreign items)', async () => {
    item = { pk: { S: 'reconcile#prod' }, seen: { S: JSON.stringify({ 'repair#i-b': NOW, 'evil#x': NOW, 'stray#d1': -1, 'pending#i c': NOW }) } };
    const memory = dynamoReconcileMemory(client, 'qk-state', { now: () => NOW, sleep: () => Promise.resolve() });
    expect(await memory.get('prod')).toEqual({ 'repair#i-b': NOW });
  });
});
