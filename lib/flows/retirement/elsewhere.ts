/** The retirement's question for a master whose own SSM agent is lost, asked through the one view. */
import { contextOf, observeCluster } from '../../observe/observe';
import type { FlowDeps } from '../deps';

/**
 * Whether slot `member`'s etcd member answers, asked through ANOTHER master (for a master whose
 * own SSM agent is lost): 'alive' when it answers as that member (by identity), 'gone' when it
 * does not (or is no member any more), 'unknown' when no other master's etcd answers.
 */
export async function memberAnswersElsewhere(deps: FlowDeps, cluster: string, member: string): Promise<{ verdict: 'alive' | 'gone' | 'unknown'; detail: string }> {
  let tried: string[] = [];
  const view = await observeCluster(deps.observe, cluster, {
    claims: true,
    etcd: {
      via: (slots) => {
        const others = slots.filter((m) => m.member !== member)
          .flatMap((m) => m.instances.filter((i) => i.lifecycleState === 'InService' || i.lifecycleState === 'Terminating:Wait').map((i) => ({ instanceId: i.instanceId, member: m.member })));
        tried = others.map((c) => c.member);
        return others;
      },
    },
  }, contextOf(deps));
  const through = view.etcd.via;
  if (!through || !view.etcd.members) return { verdict: 'unknown', detail: `no other master's etcd answers (tried ${tried.join(', ') || 'none'})` };
  const m = view.etcd.members.find((x) => x.id === view.claims[member]?.id);
  if (!m) return { verdict: 'gone', detail: `${member} is no etcd member (asked through ${through.member})` };
  return view.etcd.status.statuses.some((x) => x.memberId === m.id)
    ? { verdict: 'alive', detail: `member ${m.id} answers at ${m.clientUrls.join(',')} (asked through ${through.member})` }
    : { verdict: 'gone', detail: `member ${m.id} does not answer at ${m.clientUrls.join(',') || 'any URL'} (asked through ${through.member})` };
}
