import { type ChanceInput, DEFAULT_RECOVERY, judgeRecovery, type RecoveryInput, REVISION_BUMP_MARGIN, revisionBump, type SlotChance, slotChances } from '../../lib/domain/recovery';

describe('revisionBump', () => {
  it('raises past the highest revision anyone saw, plus etcd\'s recommended margin', () => {
    expect(revisionBump(100, [])).toBe(REVISION_BUMP_MARGIN);
    expect(revisionBump(100, [null, 150, 120])).toBe(50 + REVISION_BUMP_MARGIN);
    // A member behind the snapshot (or none seen) never lowers it.
    expect(revisionBump(100, [null, 40])).toBe(REVISION_BUMP_MARGIN);
    expect(100 + revisionBump(100, [150])).toBeGreaterThan(150);
  });
});

describe('slotChances: what each slot can do for quorum', () => {
  const base = (over: Partial<ChanceInput> = {}): ChanceInput => ({
    slots: ['a', 'b', 'c'].map((m) => ({ member: m, instanceId: `i-${m}`, instances: [{ instanceId: `i-${m}`, lifecycleState: 'InService' }] })),
    answered: {}, volumes: new Set(['a', 'b', 'c']), awaitingDr: {}, hosts: {}, startedAt: {}, now: 1_000_000, ...over,
  });
  const kinds = (c: SlotChance[]) => Object.fromEntries(c.map((x) => [x.member, x.kind]));

  it.each<[string, Partial<ChanceInput>, Record<string, SlotChance['kind']>]>([
    ['a member that answers runs', { answered: { a: 10 } }, { a: 'running', b: 'own-data', c: 'own-data' }],
    ['a launch or a termination in progress is under way', {
      slots: [
        { member: 'a', instanceId: null, instances: [{ instanceId: 'i-a2', lifecycleState: 'Pending:Wait' }] },
        { member: 'b', instanceId: 'i-b', instances: [{ instanceId: 'i-b', lifecycleState: 'InService' }, { instanceId: 'i-b0', lifecycleState: 'Terminating:Wait' }] },
        { member: 'c', instanceId: null, instances: [] },
      ],
    }, { a: 'underway', b: 'underway', c: 'underway' }],
    ['a replacement that found the volume blank, or no volume at all, has no data', {
      awaitingDr: { a: { hasData: false }, b: { hasData: true } }, volumes: new Set(['a', 'b']),
    }, { a: 'no-data', b: 'own-data', c: 'no-data' }],
    ['the host says: no data, or etcd runs though it did not answer', {
      hosts: { a: { running: false, hasData: false, revision: null }, b: { running: true, hasData: true, revision: 7 }, c: { running: false, hasData: true, revision: 5 } },
    }, { a: 'no-data', b: 'running', c: 'own-data' }],
    ['a start on own data that did not stay up for the grace counts as refused', {
      startedAt: { 'i-a': 1_000_000 - DEFAULT_RECOVERY.startGraceSec * 1000, 'i-b': 1_000_000 - 1000 },
    }, { a: 'no-data', b: 'own-data', c: 'own-data' }],
  ])('%s', (_name, over, want) => {
    expect(kinds(slotChances(base(over)))).toEqual(want);
  });
});

describe('judgeRecovery: when quorum loss is recovered, and from which copy', () => {
  const run = (m: string, revision: number | null): SlotChance => ({ member: m, kind: 'running', instanceId: `i-${m}`, revision, why: 'answers' });
  const blank = (m: string): SlotChance => ({ member: m, kind: 'no-data', instanceId: `i-${m}`, why: 'blank' });
  const own = (m: string): SlotChance => ({ member: m, kind: 'own-data', instanceId: `i-${m}`, revision: 90, why: 'down' });
  const moving = (m: string): SlotChance => ({ member: m, kind: 'underway', why: 'Pending:Wait' });
  const now = 10_000_000;
  const input = (over: Partial<RecoveryInput>): RecoveryInput => ({
    now, quorum: { state: 'lost', why: 'lost' }, chances: [run('a', 100), blank('b'), blank('c')], lostSince: now - 3600_000,
    newestBackup: { key: 'k', revision: 80, takenAt: now - 600_000 }, highestSeen: 100, settings: { ...DEFAULT_RECOVERY, mode: 'automatic' }, ...over,
  });

  it('does nothing for a quorate cluster, and never restores one it cannot see', () => {
    expect(judgeRecovery(input({ quorum: { state: 'quorate', why: '3/3' } })).kind).toBe('none');
    const blind = judgeRecovery(input({ quorum: { state: 'unknown', why: 'no member answered' } }));
    expect(blind.kind).toBe('cannot-see');
    expect(blind.why).toContain('never restores');
  });

  it('starts members on their own data first: nothing is discarded (reboots, replacements that reattached their volume)', () => {
    const v = judgeRecovery(input({ chances: [run('a', 100), own('b'), blank('c')] }));
    expect(v).toMatchObject({ kind: 'start', members: [{ member: 'b' }] });
  });

  it('two masters terminated at once, their replacements still launching: waits, no restore', () => {
    const v = judgeRecovery(input({ chances: [run('a', 100), moving('b'), moving('c')] }));
    expect(v.kind).toBe('wait');
    expect(v.why).toContain('under way');
  });

  it('a majority still running (leaderless for a moment) is never restored', () => {
    expect(judgeRecovery(input({ chances: [run('a', 100), run('b', 100), blank('c')] })).kind).toBe('wait');
  });

  it('two volumes lost: the survivor, ahead of the newest backup, is the copy; revisions lost counted from the highest ever seen', () => {
    const v = judgeRecovery(input({ highestSeen: 104 }));
    expect(v).toMatchObject({ kind: 'restore', source: { kind: 'member', member: 'a', revision: 100 }, revisionsLost: 4, highest: 104 });
  });

  it('on a tie the survivor wins; a backup ahead of every survivor wins', () => {
    expect(judgeRecovery(input({ newestBackup: { key: 'k', revision: 100, takenAt: 0 } }))).toMatchObject({ source: { kind: 'member' } });
    expect(judgeRecovery(input({ newestBackup: { key: 'k', revision: 101, takenAt: 0 } }))).toMatchObject({ source: { kind: 'backup', key: 'k' }, revisionsLost: 0 });
  });

  it('all three volumes lost: the newest backup', () => {
    const v = judgeRecovery(input({ chances: [blank('a'), blank('b'), blank('c')], highestSeen: 95 }));
    expect(v).toMatchObject({ kind: 'restore', source: { kind: 'backup', revision: 80 }, revisionsLost: 15 });
    expect(v.kind === 'restore' && v.chosenBecause).toContain('no member survives');
  });

  it('waits out the configured time since quorum was first seen lost, saying what is due', () => {
    const v = judgeRecovery(input({ lostSince: now - 60_000 }));
    expect(v).toMatchObject({ kind: 'wait', due: { kind: 'restore', source: { kind: 'member' } } });
    expect(v.why).toContain('540 s left');
    expect(judgeRecovery(input({ lostSince: null })).kind).toBe('wait');
  });

  it('an interrupted restore is finished before anything else (no start on half-restored data, no second restore)', () => {
    const v = judgeRecovery(input({ chances: [run('a', 100), own('b'), blank('c')], unfinished: { token: 't', snapshotKey: 'k' } }));
    expect(v).toMatchObject({ kind: 'unfinished', token: 't', snapshotKey: 'k', mode: 'automatic' });
  });

  it('says so when there is nothing to restore from', () => {
    expect(judgeRecovery(input({ chances: [blank('a'), blank('b'), blank('c')], newestBackup: null })).kind).toBe('stuck');
  });

  it('carries the mode: a manual cluster gets the same verdict (the reconciler alerts instead of acting)', () => {
    expect(judgeRecovery(input({ settings: DEFAULT_RECOVERY }))).toMatchObject({ kind: 'restore', mode: 'manual' });
  });
});
