/**
 * etcd member IDs are unsigned 64-bit integers. `etcdctl -w json` prints them in decimal
 * (often above 2^53, where a JS number silently rounds), while `member update/remove/promote`
 * and `move-leader` take them in hex. A MemberId is kept as the canonical hex string and
 * converted with BigInt only: never through a float.
 */
import { check } from '../validate';

declare const memberIdBrand: unique symbol;
/** Lower-case hex without leading zeros, as etcdctl prints it (e.g. `fd46fc05ad5060e4`). */
export type MemberId = string & { readonly [memberIdBrand]: true };

const U64_MAX = (1n << 64n) - 1n;

export function memberIdFromBigInt(value: bigint): MemberId {
  if (value < 0n || value > U64_MAX) throw new RangeError(`member ID ${value} is outside uint64`);
  return value.toString(16) as MemberId;
}

/** From the decimal text etcd's JSON uses (a string, never a JS number). */
export function memberIdFromDecimal(text: string): MemberId {
  if (!/^[0-9]{1,20}$/.test(text)) throw new RangeError(`member ID ${JSON.stringify(text)} is not a decimal uint64`);
  return memberIdFromBigInt(BigInt(text));
}

/** From hex as etcdctl prints or accepts it; normalises case and leading zeros. */
export function memberIdFromHex(text: string): MemberId {
  const lower = text.toLowerCase().replace(/^0x/, '').replace(/^0+(?=.)/, '');
  check('memberIdHex', lower, 'member ID');
  return memberIdFromBigInt(BigInt(`0x${lower}`));
}

export function memberIdToDecimal(id: MemberId): string {
  return BigInt(`0x${id}`).toString(10);
}
