/** `quorum-keeper backup` and `quorum-keeper backups list`, as text and as JSON. */
import type { BackupObject, BackupStore } from '../../lib/aws/backups';
import type { BackupOutcome } from '../../lib/flows/backup';
import { age } from './format';

export function renderBackup(cluster: string, store: BackupStore, out: BackupOutcome): string {
  return out.result === 'uploaded'
    ? `backed up ${cluster}: s3://${store.bucket}/${out.key} (revision ${out.revision}, ${out.keys ?? '?'} keys, ${out.size} bytes, from ${out.member} (${out.role}), ${(out.ms.total / 1000).toFixed(1)} s)`
    : `backup of ${cluster} FAILED at ${out.failure?.step}: ${out.failure?.message}`;
}

const ageSec = (b: BackupObject, now: number) => (now - b.takenAt.getTime()) / 1000;

export function backupListJson(list: readonly BackupObject[], now: number): string {
  return JSON.stringify(list.map((b) => ({ key: b.key, member: b.member, takenAt: b.takenAt.toISOString(), ageSec: Math.round(ageSec(b, now)), size: b.size, compressor: b.compressor })));
}

/** One line a backup, oldest first, under a header; a sentence when there is none. */
export function renderBackupList(cluster: string, store: BackupStore, list: readonly BackupObject[], now: number): string {
  if (list.length === 0) return `no backups of ${cluster} in s3://${store.bucket}/${store.prefix}/${cluster}/`;
  return ['TAKEN (UTC)           AGE       MEMBER     SIZE        KEY']
    .concat(list.map((b) => `${b.takenAt.toISOString().slice(0, 19).replace('T', ' ')}   ${age(ageSec(b, now)).padEnd(9)} ${b.member.padEnd(10)} ${String(b.size).padEnd(11)} ${b.key}`))
    .join('\n');
}
