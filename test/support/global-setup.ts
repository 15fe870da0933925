/** Before any test: kill etcd members and remove temp dirs left by earlier, crashed runs. */
import { reapStrays } from '../../sandbox/procs';

export default function globalSetup(): void {
  const n = reapStrays({ own: false });
  if (n > 0) console.log(`global setup: killed ${n} process(es) left by an earlier run`);
}
