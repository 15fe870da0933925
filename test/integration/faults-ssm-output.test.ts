/**
 * Fault matrix: SSM keeps only the first 24,000 characters of a command's stdout and the first
 * 8,000 of its stderr (the sandbox applies both, as GetCommandInvocation does). A master whose
 * etcdctl is noisy on stderr must still answer a survey in full; an answer SSM cut off anyway is
 * an explicit "truncated" error, after which the flow asks the next master.
 */
import { hostScripts, SANDBOX_RUN } from '../../sandbox/cluster';
import { noisyEtcdctl } from '../../sandbox/faults';
import { surveyCluster } from '../support/survey';
import { freshClusterPerTest } from '../support/scenario-suite';

jest.setTimeout(120_000);

describe('fault matrix: SSM output limits', () => {
  const t = freshClusterPerTest({});

  it('a master whose etcdctl writes 20 KB of warnings per call still answers the whole survey', async () => {
    const [a, b, c] = t.cluster.members;
    noisyEtcdctl(t.sandbox.host(a!.instanceId), 20_000);
    const { survey, tried } = await surveyCluster(t.c.ssm, hostScripts(), [a!, b!, c!].map((m) => ({ instanceId: m.instanceId, member: m.name })), SANDBOX_RUN, ['kube-scheduler', 'kube-controller-manager'], { certs: true });
    // Answered by the noisy master itself: each query's stderr is capped, so the answer fits
    // (with every member's served certificates, as the probe asks).
    expect({ tried, via: survey?.member }).toEqual({ tried: [], via: a!.name });
    expect(survey?.members?.members).toHaveLength(3);
    expect(survey?.status.statuses).toHaveLength(3);
    expect(survey?.status.statuses.filter((s) => s.isLeader)).toHaveLength(1);
    expect(survey?.certs).toHaveLength(6);
  });
});
