/** What the CLI writes on stderr while a command runs: progress lines and alerts (without a topic). */
import type { Alert } from '../../lib/aws/alerts';
import type { HostFlowDeps } from '../../lib/flows/deps';

/** `HH:MM:SS ✓ step: detail` (✗ failed, … waiting or skipped). */
export function progressLine(e: Parameters<HostFlowDeps['progress']>[0]): string {
  return `${new Date().toISOString().slice(11, 19)} ${e.status === 'fail' ? '✗' : e.status === 'ok' ? '✓' : '…'} ${e.step}: ${e.detail}`;
}

export function alertText(a: Alert): string {
  return `ALERT [${a.severity}] ${a.summary}\n  what to do: ${a.action}`;
}
