import { REVISION_BUMP_MARGIN, revisionBump } from '../../lib/domain/recovery';

describe('revisionBump', () => {
  it('raises past the highest revision anyone saw, plus etcd\'s recommended margin', () => {
    expect(revisionBump(100, [])).toBe(REVISION_BUMP_MARGIN);
    expect(revisionBump(100, [null, 150, 120])).toBe(50 + REVISION_BUMP_MARGIN);
    // A member behind the snapshot (or none seen) never lowers it.
    expect(revisionBump(100, [null, 40])).toBe(REVISION_BUMP_MARGIN);
    expect(100 + revisionBump(100, [150])).toBeGreaterThan(150);
  });
});
