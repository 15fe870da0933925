/**
 * Faults injected on sandbox hosts through the environment the SSM agent stand-in gives
 * commands: host scripts find etcd tools through QK_BIN_DIR, so a fault is a directory of
 * wrappers around the real binaries. Product code and host scripts are unchanged.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SandboxHost } from './host';

function realBin(name: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

/** Puts `etcdctl` (a bash wrapper around the real one) and the real etcd / etcdutl into a fault directory the host then uses. */
function wrapEtcdctl(host: SandboxHost, fault: string, body: string): void {
  const dir = join(host.root, 'opt/faults', fault);
  // The same fault set again (with other figures) replaces the earlier one.
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const tool of ['etcd', 'etcdutl']) {
    const real = realBin(tool);
    if (real) symlinkSync(real, join(dir, tool));
  }
  writeFileSync(join(dir, 'etcdctl'), `#!/usr/bin/env bash
# sandbox fault: ${fault}
set -euo pipefail
real=${JSON.stringify(realBin('etcdctl') ?? 'etcdctl')}
${body}`);
  chmodSync(join(dir, 'etcdctl'), 0o755);
  host.extraEnv.QK_BIN_DIR = dir;
}

/**
 * `etcdctl snapshot save` on this host writes a snapshot whose stored data is damaged: it still
 * passes `snapshot status`, only a restore (hash check) catches it — as etcd-notes.md found.
 *
 * The damage is one stored value's bytes changed in place (`value-` → `VALUE-`, the values
 * `putKeysBulk` writes), so bbolt's pages stay well-formed and `snapshot status` still reads the
 * file; only the SHA-256 etcd appends to a snapshot no longer matches. Damaging a fixed offset
 * instead was flaky: depending on the layout it hit a branch or freelist page, and then
 * `snapshot status` itself refused the file. A snapshot without such a value is damaged at its
 * middle (the old way), so the fault never silently does nothing.
 */
export function corruptSnapshots(host: SandboxHost): void {
  wrapEtcdctl(host, 'corrupt-snapshot', `"$real" "$@"
args=("$@")
for ((i = 0; i < \${#args[@]} - 2; i++)); do
  if [[ "\${args[i]}" == snapshot && "\${args[i+1]}" == save ]]; then
    f="\${args[i+2]}"
    at=$(grep -obUa 'value-' "$f" | head -n 1 | cut -d: -f1 || true)
    if [[ -n "$at" ]]; then
      printf 'VALUE-' | dd of="$f" bs=1 seek="$at" conv=notrunc status=none
    else
      size=$(stat -c %s "$f")
      printf 'QUORUM-KEEPER-SANDBOX-DAMAGE' | dd of="$f" bs=1 seek=$((size / 2 + 1234)) conv=notrunc status=none
    fi
  fi
done
`);
}

/**
 * Every etcdctl call on this host first writes `bytes` of warnings to stderr (as a client
 * logging retries or TLS handshake errors does), then runs as usual.
 */
export function noisyEtcdctl(host: SandboxHost, bytes: number): void {
  wrapEtcdctl(host, 'noisy-etcdctl', `head -c ${Math.floor(bytes)} /dev/zero | tr '\\0' 'w' >&2
printf '\\n' >&2
exec "$real" "$@"
`);
}

/** `etcdctl snapshot save` on this host takes `seconds` longer (a big DB, a slow disk). */
export function slowSnapshots(host: SandboxHost, seconds: number): void {
  wrapEtcdctl(host, 'slow-snapshot', `if [[ " $* " == *" snapshot save "* ]]; then sleep ${Math.floor(seconds)}; fi
exec "$real" "$@"
`);
}

export function clearFaults(host: SandboxHost): void {
  host.extraEnv = {};
}
