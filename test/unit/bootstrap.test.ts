/** When a master with no member answering may seed a new cluster (lib/domain/bootstrap.ts). */
import { decideSeed, type SeedFacts } from '../../lib/domain/bootstrap';

const blank = (slot: string, volumeId = `vol-${slot}`) => ({ slot, volumeId, instanceId: `i-${slot}`, blank: true });
const base: SeedFacts = {
  slot: 'etcd-a', instanceId: 'i-etcd-a', volumeId: 'vol-etcd-a', slots: ['etcd-a', 'etcd-b', 'etcd-c'],
  volumes: { 'etcd-a': ['vol-etcd-a'], 'etcd-b': ['vol-etcd-b'], 'etcd-c': ['vol-etcd-c'] },
  reports: [blank('etcd-a'), blank('etcd-b'), blank('etcd-c')], backupExists: false, formation: null,
};

describe('decideSeed', () => {
  it('seeds a new cluster: never formed, every slot reported its volume blank, no backup', () => {
    expect(decideSeed(base)).toMatchObject({ kind: 'seed', resume: false });
  });

  it.each<[string, Partial<SeedFacts>, string, RegExp]>([
    ['the cluster was formed before', { formation: { state: 'formed', seed: 'etcd-b', how: 'bootstrap' } }, 'formed', /never seeded again/],
    ['the cluster was adopted', { formation: { state: 'formed', seed: 'adopt', how: 'adopt' } }, 'formed', /adopted/],
    ['another slot holds the seed claim', { formation: { state: 'seeding', seed: 'etcd-c', how: 'bootstrap' } }, 'join', /etcd-c seeds/],
    ['this slot holds the seed claim (its first instance died)', { formation: { state: 'seeding', seed: 'etcd-a', how: 'bootstrap' } }, 'seed', /holds the seed claim/],
    ['this slot holds the seed claim with this very volume', { formation: { state: 'seeding', seed: 'etcd-a', how: 'bootstrap', volumeId: 'vol-etcd-a' } }, 'seed', /holds the seed claim with vol-etcd-a/],
    ['this slot claimed the seed with ANOTHER volume (the fence is bound to it): never a second cluster', { volumeId: 'vol-new', formation: { state: 'seeding', seed: 'etcd-a', how: 'bootstrap', volumeId: 'vol-etcd-a' } }, 'refuse', /claimed the seed with volume vol-etcd-a, but i-etcd-a mounted vol-new/],
    ['a volume holds data', { reports: [blank('etcd-a'), { ...blank('etcd-b'), blank: false }, blank('etcd-c')] }, 'refuse', /etcd-b \(vol-etcd-b\) holds etcd data/],
    ['a backup exists', { backupExists: true }, 'refuse', /backups of this cluster exist/],
    ['the bucket could not be read', { backupExists: null }, 'refuse', /backup bucket could not be read/],
    ['a slot has two tagged volumes', { volumes: { ...base.volumes, 'etcd-c': ['vol-etcd-c', 'vol-x'] } }, 'refuse', /etcd-c has 2 tagged volumes/],
    ['a slot has no tagged volume', { volumes: { ...base.volumes, 'etcd-c': [] } }, 'refuse', /etcd-c has no tagged volumes/],
    ['a slot has not reported yet', { reports: [blank('etcd-a'), blank('etcd-b')] }, 'wait', /waiting for etcd-c/],
    ['a report is about another volume than the one tagged now', { reports: [blank('etcd-a'), blank('etcd-b'), blank('etcd-c', 'vol-old')] }, 'wait', /waiting for etcd-c/],
  ])('%s', (_what, over, kind, text) => {
    const d = decideSeed({ ...base, ...over });
    expect(d.kind).toBe(kind);
    expect('detail' in d ? d.detail : d.reason).toMatch(text);
  });

  it('a report of data about a volume no longer tagged for the slot does not block a new cluster', () => {
    expect(decideSeed({ ...base, reports: [...base.reports, { ...blank('etcd-b', 'vol-gone'), blank: false }] }).kind).toBe('seed');
  });
});
