/** The last step of both lifecycle flows: complete the hook with CONTINUE (an already completed one is fine: duplicate events). */
import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { completeLifecycle, type HookRef } from '../aws/lifecycle';
import type { Step } from './steps';

export function completeHookStep<S extends { readonly deps: { asg: AutoScalingClient }; readonly hook: HookRef | null }>(noHook: string): Step<S> {
  return {
    name: 'complete',
    async run(_r, s) {
      if (!s.hook) return { detail: noHook, skipped: true };
      const res = await completeLifecycle(s.deps.asg, s.hook, 'CONTINUE');
      return { detail: res === 'done' ? 'CONTINUE' : 'hook already completed', skipped: res === 'gone' };
    },
    plan(_r, s) {
      return { action: s.hook ? 'CompleteLifecycleAction CONTINUE' : 'no lifecycle hook to complete' };
    },
  };
}
