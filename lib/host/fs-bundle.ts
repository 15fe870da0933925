/** Loads the host scripts from a directory (tests, sandbox, CLI). Lambda bundles embed them instead. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_SCRIPT_NAMES, type HostScriptBundle } from './command';

export function loadHostScripts(dir: string): HostScriptBundle {
  const read = (name: string) => readFileSync(join(dir, name), 'utf8');
  return Object.fromEntries(['lib.sh', ...HOST_SCRIPT_NAMES].map((n) => [n, read(n)])) as HostScriptBundle;
}
