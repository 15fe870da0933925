/**
 * A sandbox master: a directory standing in for the instance's root filesystem, a real etcd
 * member (started by the project's own host scripts, never by the sandbox), and an
 * apiserver stand-in. Commands sent through SSM run here exactly as the SSM agent would run
 * AWS-RunShellScript: `sh -c <commands>`, with QK_HOST_ROOT pointing at this directory.
 */
import { spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApiserverStandIn } from './apiserver';
import { freePort } from './ports';
import { isAlive, killHard } from './procs';

export interface CommandOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export class SandboxHost {
  /** Whether the SSM agent reports Online (tests flip it to model a slow boot or a lost agent). */
  agentOnline = true;
  /** Until then (epoch ms) the instance is still booting: its agent has not registered with SSM (latency profile). */
  agentReadyAt = 0;
  /** Extra environment for commands on this host (fault injection, see faults.ts). */
  extraEnv: Record<string, string> = {};

  private constructor(
    readonly instanceId: string,
    readonly root: string,
    readonly peerPort: number,
    readonly clientPort: number,
    readonly apiserver: ApiserverStandIn,
  ) {}

  static async boot(instanceId: string, root: string): Promise<SandboxHost> {
    mkdirSync(join(root, 'etc/quorum-keeper'), { recursive: true });
    mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
    mkdirSync(join(root, 'var/lib'), { recursive: true });
    const peerPort = await freePort();
    const clientPort = await freePort();
    const apiserver = await ApiserverStandIn.start(await freePort(), () => `http://127.0.0.1:${clientPort}`);
    writeFileSync(join(root, 'etc/quorum-keeper/host.env'), [
      '# written by the Quorum Keeper sandbox at boot (in production: by the master\'s user data)',
      'QK_HOST_IP=127.0.0.1',
      'QK_ETCD_SCHEME=http',
      `QK_ETCD_PEER_PORT=${peerPort}`,
      `QK_ETCD_CLIENT_PORT=${clientPort}`,
      'QK_MOUNT_POINT=/var/lib/etcd',
      `QK_APISERVER_READYZ=${apiserver.readyzUrl}`,
      `QK_APISERVER_URL=${apiserver.baseUrl}`,
      '',
    ].join('\n'));
    return new SandboxHost(instanceId, root, peerPort, clientPort, apiserver);
  }

  get peerUrl(): string {
    return `http://127.0.0.1:${this.peerPort}`;
  }

  get clientUrl(): string {
    return `http://127.0.0.1:${this.clientPort}`;
  }

  /** Environment the SSM agent stand-in gives every command on this host. */
  commandEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD') && !k.startsWith('QK_') && !k.startsWith('AWS_')) env[k] = v;
    return { ...env, QK_HOST_ROOT: this.root, QK_SERVICE_MODE: 'process', QK_DEVICE_MODE: 'directory', ...this.extraEnv };
  }

  run(commands: readonly string[], timeoutMs: number): Promise<CommandOutcome> {
    return new Promise((resolve) => {
      const child = spawn('sh', ['-c', commands.join('\n')], { cwd: this.root, env: this.commandEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      let timedOut = false;
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => {
        timedOut = true;
        child.kill('SIGKILL');
      }, timeoutMs);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ exitCode: code, stdout, stderr, timedOut });
      });
    });
  }

  /** Pid of the etcd the host scripts started here, if it is running. */
  etcdPid(): number | null {
    const file = join(this.root, 'run/quorum-keeper/etcd.pid');
    if (!existsSync(file)) return null;
    const pid = Number(readFileSync(file, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
  }

  /** Only the etcd process dies (OOM kill, crash); the instance and its agent stay up. */
  killEtcd(): void {
    const pid = this.etcdPid();
    if (pid !== null) killHard(pid);
  }

  /** etcd freezes (SIGSTOP): a slow or partitioned peer; its sockets stay open and silent. */
  pauseEtcd(): void {
    const pid = this.etcdPid();
    if (pid !== null) process.kill(pid, 'SIGSTOP');
  }

  resumeEtcd(): void {
    const pid = this.etcdPid();
    if (pid !== null) process.kill(pid, 'SIGCONT');
  }

  /** The instance dies: etcd is SIGKILLed, the agent goes silent. */
  crash(): void {
    this.killEtcd();
    this.agentOnline = false;
  }

  /**
   * The instance reboots (or, stopped, is started again): every process dies, mounts vanish (the
   * mount point is the root disk's bare directory again; an attached volume's device stays), and
   * at boot the init system starts etcd's enabled unit — as systemd does, only if every
   * `ConditionPathExists=` of the unit and its drop-ins holds (a failed condition skips the start
   * without an error; systemd.unit(5) "Conditions and Asserts"). `RequiresMountsFor=` adds a
   * dependency on the mount unit of a path only where one exists (an fstab entry); a volume
   * mounted by etcd-mount.sh has none, so it changes nothing here, as on a real master.
   * Returns whether etcd was started and, if not, why.
   */
  reboot(unitName = 'etcd.service'): { started: boolean; why: string } {
    this.killEtcd();
    this.agentOnline = false;
    const mount = join(this.root, 'var/lib/etcd');
    if (existsSync(mount) || isLink(mount)) {
      if (isLink(mount)) rmSync(mount, { force: true });
      mkdirSync(mount, { recursive: true });
    }
    rmSync(join(this.root, 'run/quorum-keeper/etcd.pid'), { force: true });
    const unitFile = join(this.root, 'etc/systemd/system', unitName);
    let outcome: { started: boolean; why: string };
    if (!existsSync(unitFile)) {
      outcome = { started: false, why: `${unitName} is not installed` };
    } else {
      const dropIns = join(`${unitFile}.d`);
      const files = [unitFile, ...(existsSync(dropIns) ? readdirSync(dropIns).filter((f) => f.endsWith('.conf')).sort().map((f) => join(dropIns, f)) : [])];
      const lines = files.flatMap((f) => readFileSync(f, 'utf8').split('\n').map((l) => l.trim()));
      const failed = lines.filter((l) => l.startsWith('ConditionPathExists=')).map((l) => l.slice('ConditionPathExists='.length))
        .find((p) => (p.startsWith('!') ? existsSync(join(this.root, p.slice(1))) : !existsSync(join(this.root, p))));
      // ExecStart= with no value resets the list; the last one is what runs (one command here).
      const exec = lines.filter((l) => l.startsWith('ExecStart=')).map((l) => l.slice('ExecStart='.length)).at(-1);
      if (failed !== undefined) outcome = { started: false, why: `ConditionPathExists=${failed} was not met` };
      else if (!exec) outcome = { started: false, why: `${unitName} has no ExecStart` };
      else {
        const [bin, ...args] = exec.split(/\s+/);
        mkdirSync(join(this.root, 'run/quorum-keeper'), { recursive: true });
        mkdirSync(join(this.root, 'var/log/quorum-keeper'), { recursive: true });
        const log = openSync(join(this.root, 'var/log/quorum-keeper/etcd.log'), 'a');
        const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('ETCD')));
        // detached: a session of its own (node calls setsid), as a service started by init.
        const child = spawn(bin!, args, { stdio: ['ignore', log, log], env, detached: true });
        child.unref();
        writeFileSync(join(this.root, 'run/quorum-keeper/etcd.pid'), `${child.pid}\n`);
        outcome = { started: true, why: `started ${bin}` };
      }
    }
    this.agentOnline = true;
    return outcome;
  }

  async shutdown(): Promise<void> {
    this.crash();
    await this.apiserver.stop();
  }
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
