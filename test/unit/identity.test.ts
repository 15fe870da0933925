import { claimMembers, unclaimed } from '../../lib/domain/identity';
import { planMembership } from '../../lib/domain/membership';
import { memberIdFromHex } from '../../lib/etcd';

const m = (id: string, name: string, peer: string) => ({ id, name, peerUrls: [peer] });
const kubeadm = [m('a1', 'ip-10-0-1-5', 'https://10.0.1.5:2380'), m('b1', 'ip-10-0-2-7', 'https://10.0.2.7:2380'), m('c1', 'ip-10-0-3-9', 'https://10.0.3.9:2380')];

describe('claimMembers: a slot is its member by recorded ID, then name, then its master\'s peer URL', () => {
  it('names equal to the tags: each slot claims its namesake', () => {
    const ms = [m('a1', 'etcd-a', 'u1'), m('b1', 'etcd-b', 'u2')];
    expect(claimMembers(ms, [{ member: 'etcd-a' }, { member: 'etcd-b' }])).toEqual({ 'etcd-a': { id: 'a1', basis: 'name' }, 'etcd-b': { id: 'b1', basis: 'name' } });
  });

  it('names after hosts: claimed by the peer URL each slot\'s master advertises, none left over', () => {
    const slots = [{ member: 'etcd-a', peerUrl: 'https://10.0.1.5:2380' }, { member: 'etcd-b', peerUrl: 'https://10.0.2.7:2380' }, { member: 'etcd-c' }];
    const claims = claimMembers(kubeadm, slots);
    expect(claims).toEqual({ 'etcd-a': { id: 'a1', basis: 'peer-url' }, 'etcd-b': { id: 'b1', basis: 'peer-url' } });
    expect(unclaimed(kubeadm, slots, claims)).toEqual({ slots: ['etcd-c'], members: ['c1'] });
  });

  it('a recorded ID wins over a name and a URL, and each member is claimed once', () => {
    // etcd-b's record names the member called etcd-a (tags were swapped): the record wins, etcd-a gets no namesake.
    const ms = [m('a1', 'etcd-a', 'u1'), m('b1', 'etcd-b', 'u2')];
    expect(claimMembers(ms, [{ member: 'etcd-a', peerUrl: 'u1' }, { member: 'etcd-b', recordedId: 'a1' }])).toEqual({ 'etcd-b': { id: 'a1', basis: 'recorded' } });
  });

  it('a record naming a member that left is not used: the slot falls back to its name', () => {
    const ms = [m('a2', 'etcd-a', 'u9')];
    expect(claimMembers(ms, [{ member: 'etcd-a', recordedId: 'a1' }])).toEqual({ 'etcd-a': { id: 'a2', basis: 'name' } });
  });
});

describe('planMembership with a recorded member ID', () => {
  const full = (id: string, name: string, peer: string) => ({ id: memberIdFromHex(id), name, peerUrls: [peer], clientUrls: [peer.replace('2380', '2379')], isLearner: false, started: true });
  const list = [full('a1', 'ip-10-0-1-5', 'https://10.0.1.5:2380'), full('b1', 'ip-10-0-2-7', 'https://10.0.2.7:2380')];

  it('a member named after its old host is the slot\'s member by ID: its data rejoins under the same ID', () => {
    expect(planMembership(list, 'etcd-a', 'https://10.0.1.50:2380', true, 'a1')).toEqual({ kind: 'update', id: 'a1', from: ['https://10.0.1.5:2380'] });
    expect(planMembership(list, 'etcd-a', 'https://10.0.1.5:2380', true, 'a1')).toEqual({ kind: 'in-place', id: 'a1', isLearner: false });
  });

  it('without the record the same data is refused (it could be any member): never a guess', () => {
    expect(planMembership(list, 'etcd-a', 'https://10.0.1.50:2380', true)).toMatchObject({ kind: 'refuse' });
    // …and a host whose URL another member holds is refused even with a record.
    expect(planMembership(list, 'etcd-a', 'https://10.0.2.7:2380', true, 'a1')).toMatchObject({ kind: 'refuse' });
  });
});
