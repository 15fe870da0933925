/** `quorum-keeper doctor` as text: one line per check, its fix indented below, a summary last. */
import type { Check } from '../../lib/domain/doctor';
import type { DoctorReport } from '../../lib/flows/doctor';

const LABEL: Record<Check['status'], string> = { pass: 'PASS', warn: 'WARN', fail: 'FAIL', skip: 'SKIP' };

export function renderDoctor(r: DoctorReport): string {
  const lines = r.checks.flatMap((c) => [
    `${LABEL[c.status]}  ${c.member ? `${c.member}: ` : ''}${c.title} — ${c.detail}`,
    ...(c.fix ? [`      fix: ${c.fix}`] : []),
  ]);
  const s = r.summary;
  lines.push('', `doctor ${r.cluster}: ${r.ok ? (s.warn ? 'OK with warnings' : 'OK') : 'FAILED'} — ${s.pass} pass, ${s.warn} warn, ${s.fail} fail, ${s.skip} skip`);
  return lines.join('\n');
}
