/**
 * `quorum-keeper adopt`: take a running cluster under management. Prints the plan; `--dry-run`
 * stops there; otherwise the cluster's name is typed back (or --yes) and the plan is carried out.
 * Exit 3 when refused (every reason printed, nothing changed), 4 when the operator declines, 1
 * when a write failed (what was written stays; running adopt again continues).
 */
import { AdoptRefused, adoptCluster, planAdoption } from '../../lib/flows/adopt';
import { FlowFailure } from '../../lib/flows/run';
import { adopted } from '../../lib/domain/adoption';
import { clusterArg, type CliIo, confirm, UsageError, type Values } from '../args';
import { withContext } from '../context';
import { adoptJson, renderAdopted, renderAdoptPlan, renderRefusals } from '../render/adopt';

export async function adopt(v: Values, io: CliIo): Promise<number> {
  const cluster = clusterArg(v);
  const dryRun = Boolean(v['dry-run']);
  return withContext(v, io, { bucket: 'optional', reconciler: true }, async ({ deps }) => {
    if (!deps.adopt) throw new UsageError('missing --state-table (or QK_STATE_TABLE): adopt records each slot\'s member ID and the cluster\'s formation there, under the same locks as the deployed functions');
    const refused = (refusals: AdoptRefused['refusals'], plan: AdoptRefused['plan']) => {
      if (v.json) io.out(adoptJson({ cluster, dryRun, result: 'refused', plan, refusals }));
      else io.err(`${plan ? `${renderAdoptPlan(plan)}\n\n` : ''}${renderRefusals(cluster, refusals)}`);
      return 3;
    };
    const plan = await planAdoption(deps.adopt, cluster);
    if (plan.refusals.length) return refused(plan.refusals, plan);
    if (dryRun || adopted(plan)) {
      if (v.json) io.out(adoptJson({ cluster, dryRun, result: dryRun ? 'planned' : 'unchanged', plan }));
      else io.out(`${renderAdoptPlan(plan)}\n\n${adopted(plan) ? `${cluster} is adopted already: nothing to do` : 'dry run: nothing was changed'}`);
      return 0;
    }
    if (!v.yes && !io.ask) {
      io.err(`${renderAdoptPlan(plan)}\n\nrefused: no terminal to confirm on: pass --yes to adopt without a prompt.\nNothing was changed.`);
      return 3;
    }
    if (!v.json) io.err(`${renderAdoptPlan(plan)}\n`);
    if (!(await confirm(v, io, `Adopt ${cluster}: write the markers, member IDs and records above.`, cluster))) {
      if (v.json) io.out(adoptJson({ cluster, dryRun, result: 'aborted', plan }));
      else io.out('aborted: nothing was changed');
      return 4;
    }
    try {
      const out = await adoptCluster(deps.adopt, cluster, plan);
      io.out(v.json ? adoptJson({ cluster, dryRun, result: out.result, plan: out.plan, wrote: out.wrote }) : renderAdopted(cluster, out));
      return 0;
    } catch (err) {
      if (err instanceof AdoptRefused) return refused(err.refusals, err.plan);
      if (!(err instanceof FlowFailure)) throw err;
      io.err(`ADOPT FAILED at ${err.step}: ${err.message}\n  what to do: ${err.action}\nWhat was written before it stays (it is right for this cluster); adopt again continues from there.`);
      return 1;
    }
  });
}
