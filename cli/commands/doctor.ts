/**
 * `quorum-keeper doctor`: a preflight of everything Quorum Keeper relies on, each check pass /
 * warn / fail (or skip) with its fix. Exit 0 when nothing failed (warnings allowed), 5 when a
 * check failed — like `status`. Read-only.
 */
import { doctor as runDoctor } from '../../lib/flows/doctor';
import { clusterArg, type CliIo, flag, type Values } from '../args';
import { withContext } from '../context';
import { renderDoctor } from '../render/doctor';

export async function doctor(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  const stack = flag('stack', v.stack, io.env.QK_STACK_NAME);
  // The state table (`reconciler`: --state-table or QK_STATE_TABLE) adds the member IDs recorded per slot; nothing is locked.
  return withContext(v, io, { bucket: 'optional', reconciler: true }, async ({ deps, store }) => {
    const report = await runDoctor(deps.doctor, cluster, {
      ...(store ? { bucket: store.bucket, ...(store.kmsKeyId ? { kmsKeyId: store.kmsKeyId } : {}) } : {}), ...(stack ? { stack } : {}),
    });
    io.out(v.json ? JSON.stringify(report) : renderDoctor(report));
    return report.ok ? 0 : 5;
  });
}
