/**
 * Strict patterns for every value that may reach a host shell or an etcdctl argv.
 * The same patterns are enforced again by the host scripts (host/lib.sh); a value that
 * does not match is refused before anything runs.
 */

export class ValidationError extends Error {
  override readonly name = 'ValidationError';
}

export const patterns = {
  /** etcd member name / Kubernetes-style DNS label, e.g. `etcd-a`. */
  memberName: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  /**
   * An etcd member's own name, which need not be a slot tag: kubeadm names members after their
   * hosts, often FQDNs (`ip-10-0-1-5.eu-west-1.compute.internal`). DNS-name characters plus `_`,
   * at most 253, alphanumeric at both ends, no `..`; never `=` or `,` (the initial-cluster syntax).
   */
  etcdName: /^(?!.*\.\.)[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$/,
  /** cluster name (same shape as a member name). */
  clusterName: /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  /** etcd member ID as etcdctl prints it: lower-case hex, no 0x, at most 64 bits. */
  memberIdHex: /^[0-9a-f]{1,16}$/,
  /** EBS volume ID. */
  volumeId: /^vol-[0-9a-f]{8}([0-9a-f]{9})?$/,
  /** EC2 instance ID. */
  instanceId: /^i-[0-9a-f]{8}([0-9a-f]{9})?$/,
  /** http(s) URL with an IPv4 address or DNS name and an explicit port, no path. */
  url: /^https?:\/\/[A-Za-z0-9.-]{1,253}:[0-9]{1,5}$/,
  /** absolute path made of safe characters only, no `..` segments (checked separately). */
  absPath: /^\/[A-Za-z0-9._/-]{0,4095}$/,
  /** etcd cluster token. */
  token: /^[A-Za-z0-9._-]{1,128}$/,
  /** duration as etcdctl accepts it, e.g. `5s`, `1500ms`. */
  duration: /^[0-9]{1,6}(ms|s|m)$/,
  // The host scripts check these too; the Lambda builds them from literals or encodes them itself.
  /** `--initial-cluster-state`. */
  state: /^(new|existing)$/,
  /** the device name an EBS volume is attached as. */
  device: /^\/dev\/(xvd|sd)[a-z]{1,2}$/,
  /** base64url (padding optional), at most 8192 characters: how URLs and headers reach a host. */
  b64url: /^(?=[A-Za-z0-9_=-]{1,8192}$)[A-Za-z0-9_-]+={0,2}$/,
  /** snapshot compression. */
  compressor: /^(auto|zstd|gzip)$/,
  /** a presigned S3 URL as a host decodes it: RFC 3986 characters only, at most 6144 (8192 base64url). */
  presignedUrl: /^(?=[A-Za-z0-9._~%/!$&'()*+,;=:@?-]{1,6144}$)https?:\/\/[A-Za-z0-9.-]+(:[0-9]{1,5})?\/[A-Za-z0-9._~%/!$&'()*+,;=:@?-]*$/,
} as const;

export type PatternName = keyof typeof patterns;

/** Returns `value` if it matches the named pattern, else throws a ValidationError naming the field. */
export function check(kind: PatternName, value: string, field: string = kind): string {
  if (typeof value !== 'string' || !patterns[kind].test(value)) {
    throw new ValidationError(`invalid ${field}: ${JSON.stringify(String(value).slice(0, 80))} does not match ${patterns[kind].source}`);
  }
  if (kind === 'absPath' && value.split('/').some((seg) => seg === '..')) {
    throw new ValidationError(`invalid ${field}: ${JSON.stringify(value)} contains a '..' segment`);
  }
  if (kind === 'url') {
    const port = Number(value.slice(value.lastIndexOf(':') + 1));
    if (port < 1 || port > 65535) throw new ValidationError(`invalid ${field}: port out of range in ${JSON.stringify(value)}`);
  }
  return value;
}
