/**
 * Which etcd member each master slot is. Pure: no AWS, no I/O.
 *
 * A member belongs to a slot by identity, not only by name (DESIGN.md): etcd names often differ
 * from the slots' member tags (kubeadm names members after hosts; a tag may be renamed or
 * mistyped), and a member no slot claims is a stray the reconciler may remove. So a slot claims,
 * in this order:
 *   1. the member whose ID it recorded (when a replacement brought it in, or an earlier mapping);
 *   2. the member named like the slot's member tag;
 *   3. the member whose peer URL is the one the slot's current master advertises.
 * Each member is claimed by at most one slot, each slot claims at most one member.
 */

export interface IdentityMember {
  id: string;
  name: string;
  peerUrls: readonly string[];
}

export interface SlotIdentity {
  /** The slot's member tag. */
  member: string;
  /** The member ID recorded for this slot, if any. */
  recordedId?: string | undefined;
  /** The peer URL the slot's InService master advertises, when it was asked. */
  peerUrl?: string | undefined;
}

export type ClaimBasis = 'recorded' | 'name' | 'peer-url';

export interface Claim {
  id: string;
  basis: ClaimBasis;
}

/** Slot member tag → the member it claims. */
export function claimMembers(members: readonly IdentityMember[], slots: readonly SlotIdentity[]): Record<string, Claim> {
  const out: Record<string, Claim> = {};
  const taken = new Set<string>();
  const claim = (slot: string, m: IdentityMember | undefined, basis: ClaimBasis) => {
    if (!m || taken.has(m.id) || out[slot]) return;
    out[slot] = { id: m.id, basis };
    taken.add(m.id);
  };
  for (const s of slots) if (s.recordedId) claim(s.member, members.find((m) => m.id === s.recordedId), 'recorded');
  for (const s of slots) claim(s.member, members.find((m) => m.name === s.member && !taken.has(m.id)), 'name');
  for (const s of slots) if (s.peerUrl) claim(s.member, members.find((m) => m.peerUrls.includes(s.peerUrl!) && !taken.has(m.id)), 'peer-url');
  return out;
}

/** Slots that claim no member yet, and members no slot claims: the ones a peer-URL lookup may pair. */
export function unclaimed(members: readonly IdentityMember[], slots: readonly SlotIdentity[], claims: Readonly<Record<string, Claim>>): { slots: string[]; members: string[] } {
  const ids = new Set(Object.values(claims).map((c) => c.id));
  return { slots: slots.filter((s) => !claims[s.member]).map((s) => s.member), members: members.filter((m) => !ids.has(m.id)).map((m) => m.id) };
}
