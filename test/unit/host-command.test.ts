import { spawnSync } from 'node:child_process';
import { renderHostCommand, type HostScriptBundle } from '../../lib/host/command';
import { loadHostScripts } from '../../lib/host/fs-bundle';
import { join } from 'node:path';

const echoBundle: HostScriptBundle = {
  'lib.sh': 'QK_LIB_LOADED=1\n',
  'etcd-mount.sh': 'source "$(dirname "$0")/lib.sh"; echo "lib=$QK_LIB_LOADED"; for a in "$@"; do printf "[%s]\\n" "$a"; done\n',
  'etcd-member.sh': '', 'etcdctl.sh': '', 'etcd-snapshot.sh': '', 'etcd-restore.sh': '',
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

  it('embeds the real shipped scripts byte for byte', () => {
    const bundle = loadHostScripts(join(__dirname, '..', '..', 'host'));
    const commands = renderHostCommand(bundle, 'etcdctl.sh', ['member', 'list']).join('\n');
    const b64 = Buffer.from(bundle['etcdctl.sh']).toString('base64');
    expect(commands).toContain(b64);
  });
});
