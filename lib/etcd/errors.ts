/** One error class for the etcd layer; `kind` says what went wrong in terms a flow can act on. */

export type EtcdErrorKind =
  | 'no-leader'
  | 'timeout'
  | 'unreachable'
  | 'unhealthy-cluster'
  | 'learner-not-in-sync'
  | 'not-a-learner'
  | 'member-not-found'
  | 'peer-url-exists'
  | 'not-leader-endpoint'
  | 'not-enough-started'
  | 'bad-output'
  | 'not-installed'
  | 'failed';

export class EtcdError extends Error {
  override readonly name = 'EtcdError';
  constructor(
    readonly kind: EtcdErrorKind,
    message: string,
    readonly detail: { command?: string; exitCode?: number; stderr?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const rules: ReadonlyArray<[RegExp, EtcdErrorKind]> = [
  [/can only promote a learner member which is in sync/, 'learner-not-in-sync'],
  [/can only promote a learner member/, 'not-a-learner'],
  [/no leader endpoint given/, 'not-leader-endpoint'],
  [/etcdserver: no leader/, 'no-leader'],
  [/member not found|member ID not found/i, 'member-not-found'],
  [/Peer URLs already exists/i, 'peer-url-exists'],
  [/not enough started members/, 'not-enough-started'],
  [/unhealthy cluster/, 'unhealthy-cluster'],
  [/connection refused|Error while dialing|all SubConns are in TransientFailure|no route to host/, 'unreachable'],
  [/context deadline exceeded|DeadlineExceeded|request timed out|SSM command \S+ ended (TimedOut|Cancelled|Undeliverable)/, 'timeout'],
  [/executable file not found|command not found|No such file or directory.*etcd(ctl|utl)/, 'not-installed'],
];

/**
 * Classifies etcdctl's stderr. Its final `Error: …` line decides when there is one: the
 * `retrying of unary invoker failed` warnings before it describe earlier attempts (an attempt
 * can fail "unhealthy cluster" and its retry then find the change already applied).
 */
export function classifyEtcdctlError(stderr: string): EtcdErrorKind {
  const classify = (text: string): EtcdErrorKind => {
    for (const [pattern, kind] of rules) if (pattern.test(text)) return kind;
    return 'failed';
  };
  const final = stderr.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('Error:')).pop();
  const fromFinal = final ? classify(final) : 'failed';
  if (fromFinal !== 'timeout' && fromFinal !== 'failed') return fromFinal;
  // A generic final line ("context deadline exceeded"): the attempts before it say why
  // (connection refused → unreachable, unhealthy cluster → retry later).
  const fromAll = classify(stderr);
  return fromAll === 'failed' ? fromFinal : fromAll;
}

/** The human part of etcdctl's stderr: its final `Error: …` line, else the last non-empty line. */
export function summariseStderr(stderr: string): string {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const err = [...lines].reverse().find((l) => l.startsWith('Error:'));
  return (err ?? lines[lines.length - 1] ?? '').slice(0, 500);
}
