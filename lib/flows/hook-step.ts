/** The last step of both lifecycle flows: complete the hook with CONTINUE (an already completed one is fine: duplicate events). */
import type { HookRef } from '../aws/lifecycle';
import type { LifecyclePort } from '../aws/ports';
import type { Step } from './steps';

export function completeHookStep<S extends { readonly deps: { lifecycle: LifecyclePort }; readonly hook: HookRef | null }>(noHook: string): Step<S> {
  return {
    name: 'complete',
    async run(_r, s) {
      if (!s.hook) return { detail: noHook, skipped: true };
      const res = await s.deps.lifecycle.complete(s.hook, 'CONTINUE');
      return { detail: res === 'done' ? 'CONTINUE' : 'hook already completed', skipped: res === 'gone' };
    },
    plan(_r, s) {
      return { action: s.hook ? 'CompleteLifecycleAction CONTINUE' : 'no lifecycle hook to complete' };
    },
  };
}
