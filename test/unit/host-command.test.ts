import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { HOST_SCRIPT_NAMES, MAX_COMMAND_BYTES, renderHostCommand, type HostScriptBundle } from '../../lib/host/command';
import { loadHostScripts } from '../../lib/host/fs-bundle';
import { join } from 'node:path';

const echoBundle: HostScriptBundle = {
  'lib.sh': 'QK_LIB_LOADED=1\n',
  'etcd-mount.sh': 'source "$(dirname "$0")/lib.sh"; echo "lib=$QK_LIB_LOADED"; for a in "$@"; do printf "[%s]\\n" "$a"; done\n',
  'etcd-member.sh': '', 'etcd-query.sh': '', 'etcdctl.sh': '', 'etcd-snapshot.sh': '', 'etcd-restore.sh': '',
};

describe('renderHostCommand', () => {
  it('delivers the scripts and passes every argument through sh intact', () => {
    const args = ['--volume-id', 'vol-0123456789abcdef0', '--initial-cluster', 'a=http://10.0.0.1:2380,b=http://10.0.0.2:2380', '--x=@+:/'];
    const commands = renderHostCommand(echoBundle, 'etcd-mount.sh', args);
    // SSM's AWS-RunShellScript joins the commands into one sh script.
    const r = spawnSync('sh', ['-c', commands.join('\n')], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`lib=1\n${args.map((a) => `[${a}]`).join('\n')}\n`);
  });

  it('passes the exit code of the script through', () => {
    const bundle = { ...echoBundle, 'etcd-member.sh': 'exit 4\n' };
    const r = spawnSync('sh', ['-c', renderHostCommand(bundle, 'etcd-member.sh', []).join('\n')]);
    expect(r.status).toBe(4);
  });

  it.each(['; rm -rf /', '$(id)', '`id`', "a'b", 'a b', 'a\nb', '../etc/passwd', 'x'.repeat(2049), 'a|b', 'a&b', 'a>b'])('refuses %j', (bad) => {
    expect(() => renderHostCommand(echoBundle, 'etcd-mount.sh', ['--member', bad])).toThrow(/refusing host-script argument/);
  });

  it('takes a base64url payload after a --…-b64 flag up to the host\'s own 8,192 characters, and nothing else that long', () => {
    const payload = 'A'.repeat(8192);
    const r = spawnSync('sh', ['-c', renderHostCommand(echoBundle, 'etcd-mount.sh', ['--url-b64', payload]).join('\n')], { encoding: 'utf8' });
    expect(r.stdout).toContain(`[${payload}]`);
    expect(() => renderHostCommand(echoBundle, 'etcd-mount.sh', ['--url-b64', 'A'.repeat(8193)])).toThrow(/not base64url of at most 8192/);
    expect(() => renderHostCommand(echoBundle, 'etcd-mount.sh', ['--url-b64', 'a+b/c'])).toThrow(/not base64url/);
    expect(() => renderHostCommand(echoBundle, 'etcd-mount.sh', ['--member', 'A'.repeat(2049)])).toThrow(/refusing host-script argument/);
  });

  it('every real script with its largest arguments stays under SSM\'s 64 KB for document plus parameters', () => {
    const bundle = loadHostScripts(join(__dirname, '..', '..', 'host'));
    const big = 'A'.repeat(8192);
    for (const script of ['etcd-mount.sh', 'etcd-member.sh', 'etcdctl.sh', 'etcd-snapshot.sh', 'etcd-restore.sh'] as const) {
      const commands = renderHostCommand(bundle, script, ['--upload-url-b64', big, '--headers-b64', big, '--initial-cluster', 'x'.repeat(2048)]);
      // What SendCommand carries: the parameters as JSON, plus AWS-RunShellScript (~1 KB).
      expect({ script, bytes: Buffer.byteLength(JSON.stringify({ commands })) + 1024 < 64 * 1024 - 4096 }).toEqual({ script, bytes: true });
    }
    // Scripts travel gzipped: what cannot be compressed (random text) still counts in full.
    const huge: HostScriptBundle = { ...echoBundle, 'etcd-mount.sh': `# ${randomBytes(50_000).toString('base64')}\n` };
    expect(() => renderHostCommand(huge, 'etcd-mount.sh', [])).toThrow(/over the 60000 that fit SSM's 64 KB limit/);
  });

  it('embeds every real shipped script byte for byte, gzipped (about half their size), each command well within SSM\'s limit', () => {
    const bundle = loadHostScripts(join(__dirname, '..', '..', 'host'));
    const unpack = (line: string) => gunzipSync(Buffer.from(/printf '%s' '([A-Za-z0-9+/=]+)'/.exec(line)![1]!, 'base64')).toString('utf8');
    let packed = 0;
    let raw = 0;
    for (const name of HOST_SCRIPT_NAMES) {
      const commands = renderHostCommand(bundle, name, ['status']);
      expect(unpack(commands.find((c) => c.endsWith('"$qk_dir/lib.sh"'))!)).toBe(bundle['lib.sh']);
      const script = commands.find((c) => c.endsWith(`"$qk_dir/${name}"`))!;
      expect(commands.join('\n').length).toBeLessThan(MAX_COMMAND_BYTES / 2);
      expect(unpack(script)).toBe(bundle[name]);
      packed += script.length;
      raw += Buffer.byteLength(bundle[name]);
    }
    // gzip (~0.4 on shell text), then base64 (4/3).
    expect(packed / raw).toBeLessThan(0.55);
  });
});
