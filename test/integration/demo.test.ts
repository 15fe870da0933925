/** The README's demo command must keep working: run the demo script and read its output. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

jest.setTimeout(120_000);

it('npm run demo brings up a 3-master sandbox cluster and prints a healthy status table', () => {
  const root = join(__dirname, '..', '..');
  const r = spawnSync('npx', ['tsx', 'scripts/demo.ts'], { cwd: root, encoding: 'utf8', timeout: 110_000, env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const table = r.stdout.split('\n').filter((l) => /^etcd-[abc] /.test(l));
  expect(table).toHaveLength(3);
  expect(table.filter((l) => / leader /.test(l))).toHaveLength(1);
  expect(table.every((l) => /attached to it .* healthy$/.test(l))).toBe(true);
  expect(r.stdout).toMatch(/3 members, 1 leader, 3\/3 healthy in the load balancer/);
});
