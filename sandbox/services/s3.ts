/** S3, which moto serves but for one check it does not make (below). */
import { type ParsedRequest, type Reply, s3Error } from '../protocol';
import type { SandboxState } from './state';

/**
 * S3 checks a PUT's x-amz-checksum-sha256 against the body and refuses a mismatch with
 * BadDigest; moto stores whatever it is told. (Streaming aws-chunked bodies carry their
 * checksum in a trailer and are passed through.) Null when the request may go on to moto.
 */
export function refuseBadDigest(sb: SandboxState, r: ParsedRequest): Reply | null {
  const claimed = r.headers['x-amz-checksum-sha256'];
  if (r.method !== 'PUT' || typeof claimed !== 'string' || String(r.headers['content-encoding'] ?? '').includes('aws-chunked')) return null;
  const actual = r.sha256;
  if (actual === claimed) return null;
  sb.s3Rejections.push({ url: r.url.split('?')[0] ?? '', reason: 'BadDigest' });
  return s3Error(400, 'BadDigest', 'The SHA256 you specified did not match the calculated checksum.');
}
