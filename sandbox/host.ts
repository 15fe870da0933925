/**
 * A sandbox master: a directory standing in for the instance's root filesystem, a real etcd
 * member (started by the project's own host scripts, never by the sandbox), and an
 * apiserver stand-in. Commands sent through SSM run here exactly as the SSM agent would run
 * AWS-RunShellScript: `sh -c <commands>`, with QK_HOST_ROOT pointing at this directory.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ApiserverStandIn } from './apiserver';
import { HOST_PKI, SandboxPki, type TlsFiles } from './pki';
import { freePort } from './ports';
import { isAlive, killHard } from './procs';

export interface CommandOutcome {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export type EtcdScheme = 'http' | 'https';
export type ServiceMode = 'systemd' | 'process';

/** The systemctl stand-in (sandbox/bin/systemctl), first on every host command's PATH. */
const SYSTEMCTL_DIR = join(__dirname, 'bin');
/** Where the stand-in keeps the etcd unit's state on a host (a tmpfs on a real master: /run). */
const UNIT_STATE = 'run/systemd-standin/etcd.service';

/** A host's etcd client certificate files, absolute: etcdctl's (`healthcheck-client`) or the apiserver's. */
export function hostTls(root: string, who: 'etcdctl' | 'apiserver'): TlsFiles {
  return who === 'etcdctl'
    ? { cacert: join(root, HOST_PKI.cacert), cert: join(root, HOST_PKI.clientCert), key: join(root, HOST_PKI.clientKey) }
    : { cacert: join(root, HOST_PKI.cacert), cert: join(root, HOST_PKI.apiserverCert), key: join(root, HOST_PKI.apiserverKey) };
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
    /** `https` (mutual TLS on etcd's client and peer URLs, as every production cluster) unless a test says why not. */
    readonly scheme: EtcdScheme,
    /** Where this master's etcd binaries are (its AMI's etcd: `QK_BIN_DIR`); null: found on PATH. */
    readonly binDir: string | null,
    /** How the host scripts run etcd: `systemd` (what real masters use; the unit run by `sandbox/bin/systemctl`) or `process`. */
    readonly serviceMode: ServiceMode,
  ) {}

  static async boot(instanceId: string, root: string, opts: { scheme?: EtcdScheme; binDir?: string | null; serviceMode?: ServiceMode } = {}): Promise<SandboxHost> {
    const scheme = opts.scheme ?? 'https';
    const serviceMode = opts.serviceMode ?? 'systemd';
    mkdirSync(join(root, 'etc/quorum-keeper'), { recursive: true });
    mkdirSync(join(root, 'dev/disk/by-id'), { recursive: true });
    mkdirSync(join(root, 'var/lib'), { recursive: true });
    const peerPort = await freePort();
    const clientPort = await freePort();
    // The certificates a master's provisioning (kubeadm join --control-plane, or the AMI's user
    // data) leaves at kubeadm's paths; the apiserver stand-in reaches etcd with its own.
    if (scheme === 'https') await (await SandboxPki.get()).issueHost(root, { hostname: instanceId, ip: '127.0.0.1' });
    const apiserverTls = scheme === 'https' ? hostTls(root, 'apiserver') : undefined;
    const apiserver = await ApiserverStandIn.start(await freePort(), () => `${scheme}://127.0.0.1:${clientPort}`, apiserverTls);
    writeFileSync(join(root, 'etc/quorum-keeper/host.env'), [
      '# written by the Quorum Keeper sandbox at boot (in production: by the master\'s user data)',
      'QK_HOST_IP=127.0.0.1',
      `QK_ETCD_SCHEME=${scheme}`,
      `QK_ETCD_PEER_PORT=${peerPort}`,
      `QK_ETCD_CLIENT_PORT=${clientPort}`,
      ...(scheme === 'https' ? [
        `QK_ETCD_CACERT=${HOST_PKI.cacert}`,
        `QK_ETCD_CERT=${HOST_PKI.serverCert}`,
        `QK_ETCD_KEY=${HOST_PKI.serverKey}`,
        `QK_ETCD_PEER_CERT=${HOST_PKI.peerCert}`,
        `QK_ETCD_PEER_KEY=${HOST_PKI.peerKey}`,
        `QK_ETCD_CLIENT_CERT=${HOST_PKI.clientCert}`,
        `QK_ETCD_CLIENT_KEY=${HOST_PKI.clientKey}`,
      ] : []),
      'QK_MOUNT_POINT=/var/lib/etcd',
      `QK_APISERVER_READYZ=${apiserver.readyzUrl}`,
      `QK_APISERVER_URL=${apiserver.baseUrl}`,
      '',
    ].join('\n'));
    // The AMI's etcd unit, as Debian's etcd-server package installs it, enabled (multi-user.target
    // wants it): the host scripts' drop-in decides how it runs (ExecStart) and when (the boot guard).
    if (serviceMode === 'systemd') {
      const etcd = opts.binDir ? join(opts.binDir, 'etcd') : 'etcd';
      mkdirSync(join(root, 'etc/systemd/system/multi-user.target.wants'), { recursive: true });
      writeFileSync(join(root, 'etc/systemd/system/etcd.service'), [
        '[Unit]', 'Description=etcd - highly-available key value store', 'After=network.target', '',
        '[Service]', 'Environment=DAEMON_ARGS=', 'Environment=ETCD_NAME=%H', 'Environment=ETCD_DATA_DIR=/var/lib/etcd/default',
        'EnvironmentFile=-/etc/default/%p', 'Type=notify', 'User=etcd', 'PermissionsStartOnly=true', `ExecStart=${etcd} $DAEMON_ARGS`,
        'Restart=on-abnormal', 'LimitNOFILE=65536', '', '[Install]', 'WantedBy=multi-user.target', '',
      ].join('\n'));
      symlinkSync(join(root, 'etc/systemd/system/etcd.service'), join(root, 'etc/systemd/system/multi-user.target.wants/etcd.service'));
    }
    return new SandboxHost(instanceId, root, peerPort, clientPort, apiserver, scheme, opts.binDir ?? null, serviceMode);
  }

  get peerUrl(): string {
    return `${this.scheme}://127.0.0.1:${this.peerPort}`;
  }

  get clientUrl(): string {
    return `${this.scheme}://127.0.0.1:${this.clientPort}`;
  }

  /** Environment the SSM agent stand-in gives every command on this host. */
  commandEnv(): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('ETCD') && !k.startsWith('QK_') && !k.startsWith('AWS_')) env[k] = v;
    return {
      ...env, PATH: `${SYSTEMCTL_DIR}:${env.PATH ?? ''}`, QK_HOST_ROOT: this.root, QK_SERVICE_MODE: this.serviceMode, QK_DEVICE_MODE: 'directory',
      ...(this.binDir ? { QK_BIN_DIR: this.binDir } : {}), ...this.extraEnv,
    };
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

  /** Pid of the etcd the host scripts started here (the unit's main process under systemd), if it is running. */
  etcdPid(): number | null {
    return pidIn(join(this.root, this.serviceMode === 'systemd' ? `${UNIT_STATE}/pid` : 'run/quorum-keeper/etcd.pid'));
  }

  /** Only the etcd process dies (OOM kill, crash); the instance and its agent stay up (the unit turns `failed`). */
  killEtcd(): void {
    const pid = this.etcdPid();
    if (pid !== null) killHard(pid);
  }

  /** The instance's processes die: etcd and, under systemd, the service manager's part for it. */
  private killAll(): void {
    const supervisor = pidIn(join(this.root, `${UNIT_STATE}/supervisor`));
    if (supervisor !== null) killHard(supervisor);
    this.killEtcd();
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
    this.killAll();
    this.agentOnline = false;
  }

  /**
   * The instance reboots (or, stopped, is started again): every process dies, mounts vanish (the
   * mount point is the root disk's bare directory again; an attached volume's device stays), and
   * at boot the init system starts etcd's enabled unit — as systemd does, only if every
   * `ConditionPathExists=` of the unit and its drop-ins holds (a failed condition skips the start
   * without an error; systemd.unit(5) "Conditions and Asserts"). `RequiresMountsFor=` adds a
   * dependency on the mount unit of a path only where one exists (an fstab entry); a volume
   * mounted by etcd-mount.sh has none, so it changes nothing here, as on a real master. /run is
   * a tmpfs: emptied. In systemd mode the units `multi-user.target.wants` are started through the
   * systemctl stand-in (which judges the conditions); in process mode this reads the unit files
   * itself. Returns whether etcd was started and, if not, why.
   */
  reboot(unitName = 'etcd.service'): { started: boolean; why: string } {
    this.killAll();
    this.agentOnline = false;
    const mount = join(this.root, 'var/lib/etcd');
    if (existsSync(mount) || isLink(mount)) {
      if (isLink(mount)) rmSync(mount, { force: true });
      mkdirSync(mount, { recursive: true });
    }
    rmSync(join(this.root, 'run'), { recursive: true, force: true }); // a tmpfs: empty at boot
    const mounts = this.bootMounts();
    const blocked = this.failedMountDependency(unitName, mounts);
    if (blocked) {
      this.agentOnline = true;
      return { started: false, why: blocked };
    }
    if (this.serviceMode === 'systemd') {
      const outcome = this.bootSystemd(unitName);
      this.agentOnline = true;
      return outcome;
    }
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

  /**
   * systemd at boot, before services: the mount units (enabled ones in systemd mode, every
   * installed one in process mode) are mounted when their `What=` device is there — in the
   * sandbox a mount is a symlink to the volume's directory (QK_DEVICE_MODE=directory). A device
   * that does not appear fails the mount (`nofail`: the boot goes on). By `Where=`.
   */
  private bootMounts(): Map<string, { unit: string; ok: boolean; why: string }> {
    const dir = join(this.root, 'etc/systemd/system');
    const listed = this.serviceMode === 'systemd' ? join(dir, 'multi-user.target.wants') : dir;
    const out = new Map<string, { unit: string; ok: boolean; why: string }>();
    if (!existsSync(listed)) return out;
    for (const unit of readdirSync(listed).filter((n) => n.endsWith('.mount')).sort()) {
      const text = readFileSync(join(dir, unit), 'utf8');
      const what = /^What=(.+)$/m.exec(text)?.[1]?.trim();
      const where = /^Where=(.+)$/m.exec(text)?.[1]?.trim();
      if (!what || !where) continue;
      const device = join(this.root, what);
      if (!existsSync(device)) {
        out.set(where, { unit, ok: false, why: `${what} did not appear` });
        continue;
      }
      const target = join(this.root, where);
      if (isLink(target)) rmSync(target, { force: true });
      // A mount hides what the bare mount point holds; here that is moved out of the way (an empty
      // one, as reboot leaves it, is just removed).
      else if (existsSync(target) && readdirSync(target).length === 0) rmSync(target, { recursive: true });
      else if (existsSync(target)) renameSync(target, `${target}.hidden-by-mount-${Date.now()}`);
      mkdirSync(dirname(target), { recursive: true });
      symlinkSync(realpathSync(device), target);
      out.set(where, { unit, ok: true, why: `${what} mounted at ${where}` });
    }
    return out;
  }

  /**
   * `RequiresMountsFor=` of the unit and its drop-ins: where a mount unit exists for one of those
   * paths (or a parent) and failed, the service is not started (systemd.unit(5): the dependency
   * fails). Where none exists, nothing (no fstab entry: no dependency). The reason, or null.
   */
  private failedMountDependency(unitName: string, mounts: Map<string, { unit: string; ok: boolean; why: string }>): string | null {
    const unitFile = join(this.root, 'etc/systemd/system', unitName);
    const dropIns = `${unitFile}.d`;
    const files = [unitFile, ...(existsSync(dropIns) ? readdirSync(dropIns).filter((f) => f.endsWith('.conf')).sort().map((f) => join(dropIns, f)) : [])].filter((f) => existsSync(f));
    const needs = files.flatMap((f) => readFileSync(f, 'utf8').split('\n')).filter((l) => l.startsWith('RequiresMountsFor=')).flatMap((l) => l.slice('RequiresMountsFor='.length).trim().split(/\s+/));
    for (const path of needs) {
      const m = [...mounts.entries()].filter(([where]) => path === where || path.startsWith(`${where}/`)).sort((x, y) => y[0].length - x[0].length)[0];
      if (m && !m[1].ok) return `dependency failed: ${m[1].unit} (${m[1].why})`;
    }
    return null;
  }

  /** systemd at boot: starts the units multi-user.target wants, through the stand-in (its conditions decide). */
  private bootSystemd(unitName: string): { started: boolean; why: string } {
    if (!existsSync(join(this.root, 'etc/systemd/system/multi-user.target.wants', unitName))) return { started: false, why: `${unitName} is not enabled` };
    execFileSync(join(SYSTEMCTL_DIR, 'systemctl'), ['start', '--no-block', unitName], { env: this.commandEnv(), stdio: 'ignore' });
    const result = existsSync(join(this.root, `${UNIT_STATE}/result`)) ? readFileSync(join(this.root, `${UNIT_STATE}/result`), 'utf8').trim() : '';
    if (result.startsWith('condition ')) return { started: false, why: `${result.slice('condition '.length)} was not met` };
    return this.etcdPid() !== null ? { started: true, why: `started ${unitName}` } : { started: false, why: `${unitName}: ${result || 'not started'}` };
  }

  async shutdown(): Promise<void> {
    this.crash();
    await this.apiserver.stop();
  }
}

function pidIn(file: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : null;
}

function isLink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
