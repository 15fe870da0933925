/**
 * Lossless JSON for etcdctl output: every integer is kept exactly (bigint when it does not
 * fit a double), so 64-bit member IDs, cluster IDs and hashes are never rounded.
 */
import { parse } from 'lossless-json';

export type LosslessValue = null | boolean | string | number | bigint | LosslessValue[] | { [key: string]: LosslessValue };

function parseNumber(text: string): number | bigint {
  if (/^-?[0-9]+$/.test(text)) {
    const big = BigInt(text);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(text) : big;
  }
  return Number(text);
}

export function parseJsonLossless(text: string): LosslessValue {
  return parse(text, null, parseNumber) as LosslessValue;
}
