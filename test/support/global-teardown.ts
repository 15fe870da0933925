/** After all tests, even failed ones: nothing this run started may outlive it. */
import { reapStrays } from '../../sandbox/procs';

export default function globalTeardown(): void {
  const n = reapStrays({ own: true });
  if (n > 0) console.log(`global teardown: killed ${n} stray process(es) this run left behind`);
}
