/** The README's demo command must keep working: run the demo script and read its output. */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

jest.setTimeout(200_000);

it('npm run demo forms a cluster from nothing, replaces a killed master, ends with a healthy 3-member table, and the reconciler recovers a lost launch event', () => {
  const root = join(__dirname, '..', '..');
  const r = spawnSync('npx', ['tsx', 'scripts/demo.ts'], { cwd: root, encoding: 'utf8', timeout: 190_000, env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  const rows = r.stdout.split('\n').filter((l) => /^etcd-[abc] /.test(l));
  expect(rows).toHaveLength(6); // before and after the replacement
  const after = rows.slice(3);
  expect(after.filter((l) => / leader /.test(l))).toHaveLength(1);
  expect(after.every((l) => /\sInService\s+vol-\S+\s+yes\s.*\shealthy$/.test(l))).toBe(true);
  // The replaced member keeps its volume but runs on the new instance (product `status` table:
  // MEMBER AZ ASG INSTANCE LIFECYCLE VOLUME ATTACHED ETCD RAFT-LAG LB).
  const [before, now] = [rows[0]!.split(/\s+/), after[0]!.split(/\s+/)];
  expect(now[5]).toBe(before[5]);
  expect(now[3]).not.toBe(before[3]);
  expect(r.stdout).toMatch(/^cluster demo: HEALTHY — etcd leader etcd-[abc], 3\/3 voters healthy \(quorum 2, margin 1\)/m);
  for (const step of ['volume', 'attach', 'mount', 'membership', 'caught-up', 'register', 'complete']) expect(r.stdout).toMatch(new RegExp(`\\s${step}\\s+ok\\s`));
  expect(r.stdout).toMatch(/replacement continued in [\d.]+ s; lifecycle action: CONTINUE/);
  // It starts from nothing: three ASGs launch onto blank volumes and Quorum Keeper forms the cluster.
  expect(r.stdout.match(/launched i-\w+ in us-east-1[abc] \(Pending:Wait on its launch hook\); blank volume vol-\w+/g)).toHaveLength(3);
  expect(r.stdout.match(/ etcd-[abc] bootstrap\s+ok\s+seed: every slot's volume is blank/g)).toHaveLength(1);
  expect(r.stdout.match(/ etcd-[abc] bootstrap\s+ok\s+etcd-[abc] answers \(i-\w+\): joining the cluster it seeded/g)).toHaveLength(2);
  expect(r.stdout).toMatch(/cluster formed in [\d.]+ s: seed etcd-[abc] \(etcd cluster [0-9a-f]+\), 2 joined as learners and were promoted; hooks: etcd-a CONTINUE, etcd-b CONTINUE, etcd-c CONTINUE/);
  // It says which etcd it runs, over mutual TLS, and the https URLs it uses.
  expect(r.stdout).toMatch(/^\[\s*[\d.]+s\] etcd 3\.\d+\.\d+ \(\S+\), mutual TLS on client and peer URLs/m);
  expect(r.stdout).toMatch(/etcd client URLs: etcd-a https:\/\/127\.0\.0\.1:\d+, etcd-b https:\/\/127\.0\.0\.1:\d+, etcd-c https:\/\/127\.0\.0\.1:\d+/);
  expect(r.stdout).toMatch(/\smembership\s+ok\s+\d+ ms\s+member update \w+: https:\/\/127\.0\.0\.1:\d+ → https:\/\/127\.0\.0\.1:\d+/);
  expect(r.stdout).toMatch(/writes: \d+ acknowledged, .*lost \(acknowledged but missing\): 0; longest unavailability: [\d.]+ s/);
  expect(r.stdout).toMatch(/3 members, 1 leader, 3\/3 healthy in the load balancer; 1000\/1000 keys readable on the new master/);
  expect(r.stdout).toMatch(/backup uploaded: s3:\/\/quorum-keeper-backups\/etcd-backups\/demo\/\d{8}T\d{6}Z-etcd-[abc]\.db\.(zst|gz) \(revision \d+, \d+ keys/);
  expect(r.stdout).toMatch(/reconcile demo: drift 1; found: re-drive the replacement of etcd-b on i-\w+ .*; did: etcd-b on i-\w+ brought in \(update\), hook completed/);
  expect(r.stdout).toMatch(/and the run after it: reconcile demo: in shape, nothing to do/);
  expect(r.stdout).toMatch(/watchdog probe \(one SSM command on etcd-[abc]\): healthy — leader etcd-[abc], 3\/3 healthy, quorum margin 1, kube-controller-manager held by master-b_1/);
});
