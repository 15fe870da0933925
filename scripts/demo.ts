/**
 * `npm run demo`: brings up the local sandbox — moto behind the sandbox endpoint, three
 * masters (one ASG per AZ) each with a real etcd member on its own EBS "volume" — writes
 * some data, prints the cluster status as an operator would see it, and tears it all down.
 * (The master-replacement scenario joins this demo with the lifecycle flows, issue #4.)
 */
import { destroyClients, provisionCluster, sandboxClients } from '../sandbox/cluster';
import { reapStrays } from '../sandbox/procs';
import { Sandbox } from '../sandbox/sandbox';
import { clusterStatus, renderTable } from '../sandbox/status';

const t0 = Date.now();
const stamp = () => `[${((Date.now() - t0) / 1000).toFixed(1).padStart(5)}s]`;
const say = (line: string) => console.log(`${stamp()} ${line}`);

async function putKeys(endpoint: string, count: number): Promise<void> {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  for (let i = 0; i < count; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, j) =>
      fetch(`${endpoint}/v3/kv/put`, { method: 'POST', body: JSON.stringify({ key: b64(`/registry/demo/key-${i + j}`), value: b64(`value-${i + j}`) }) }).then((r) => {
        if (!r.ok) throw new Error(`put failed: HTTP ${r.status}`);
      })));
  }
}

async function main(): Promise<void> {
  reapStrays({ own: false });
  say('starting the sandbox (moto_server + sandbox AWS endpoint)');
  const sandbox = await Sandbox.start();
  const c = sandboxClients(sandbox);
  try {
    say(`sandbox AWS endpoint ${sandbox.endpoint} (moto at ${sandbox.moto.url})`);
    const cluster = await provisionCluster(sandbox, c, { name: 'demo', progress: say });
    say('writing 1000 keys through the etcd API');
    await putKeys(cluster.members[0]!.clientUrl, 1000);
    say('reading the cluster state through SSM (etcdctl on a master), EC2 and ELBv2');
    const rows = await clusterStatus(c, cluster);
    console.log(`\ncluster ${cluster.name}\n${renderTable(rows)}\n`);
    const leaders = rows.filter((r) => r.etcd === 'leader').length;
    const healthy = rows.filter((r) => r.lb === 'healthy').length;
    say(`${rows.length} members, ${leaders} leader, ${healthy}/${rows.length} healthy in the load balancer`);
    if (leaders !== 1 || healthy !== rows.length) process.exitCode = 1;
  } finally {
    say('tearing the sandbox down');
    destroyClients(c);
    await sandbox.stop();
  }
  say('done');
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exitCode = 1;
});
