/**
 * The strict patterns twice: lib/validate.ts (the Lambda, before a command is sent) and
 * host/lib.sh (qk_pattern, again on the master). Both sides must know the same kinds, and
 * give the same verdict on every sample below, hostile ones included. The bash side is
 * qk_check as the scripts call it (under `set -euo pipefail`), with every value passed as
 * argv, never spliced into shell text; it runs in the C and C.UTF-8 locales (bash's bracket
 * ranges and ${#v} follow the locale; an SSM command usually runs in C).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { check, patterns, type PatternName } from '../../lib/validate';

const LIB = join(__dirname, '..', '..', 'host', 'lib.sh');
const LIB_TEXT = readFileSync(LIB, 'utf8');
const LOCALES = ['C', 'C.UTF-8'];

/** The kinds qk_pattern knows: the labels of its case arms. */
function hostKinds(): string[] {
  const body = /^qk_pattern\(\) \{\n([\s\S]*?)\n\}/m.exec(LIB_TEXT)?.[1] ?? '';
  return [...body.matchAll(/^ *([A-Za-z0-9|]+)\)/gm)].flatMap((m) => m[1]!.split('|')).sort();
}

/**
 * qk_check's verdict on each value (true = accepted), one bash for all of them. Each check
 * runs in a background subshell (`& wait`): that keeps errexit on inside it, as in a script,
 * where `(…) || …` would turn it off. Any exit but 0 (valid) or 2 (refused) fails the test.
 */
function hostVerdicts(kind: string, values: readonly string[], locale: string): boolean[] {
  const script = [
    'set -euo pipefail',
    'source "$1"; kind="$2"; shift 2',
    'for v in "$@"; do rc=0; (qk_check "$kind" "$v" sample) 2>/dev/null & wait "$!" || rc=$?; echo "$rc"; done',
  ].join('\n');
  const r = spawnSync('bash', ['-c', script, 'bash', LIB, kind, ...values], {
    encoding: 'utf8', env: { PATH: process.env.PATH, LC_ALL: locale }, timeout: 60_000,
  });
  const codes = r.stdout.split('\n').filter(Boolean);
  expect({ kind, status: r.status, n: codes.length, odd: codes.filter((c) => c !== '0' && c !== '2') })
    .toEqual({ kind, status: 0, n: values.length, odd: [] });
  return codes.map((c) => c === '0');
}

function tsVerdict(kind: PatternName, value: string): boolean {
  try {
    check(kind, value);
    return true;
  } catch {
    return false;
  }
}

const x = (n: number, c = 'a') => c.repeat(n);

/** Refused by every kind: shell syntax, quoting, whitespace, unicode look-alikes, sizes. */
const HOSTILE = [
  '', ' ', '\t', '\n', '; rm -rf /', '$(touch /tmp/qk-pwned)', '`id`', '${IFS}', "'", '"', '\\', '|', '&', '*', '?',
  'a b', 'a\nb', 'a\rb', 'a\u0001b', 'é', 'ａ', '٣', 'ﬀ', '\u212a', '😀', '\u2028', x(10_000),
];

interface Table { ok: string[]; bad: string[] }
const NAME: Table = {
  ok: ['a', '0', 'etcd-a', 'a-b-c', '9z', x(63)],
  bad: ['A', 'Etcd-a', 'etcd_a', 'etcd.a', '-a', 'a-', x(64), 'etcd-a\n', ' etcd-a', 'etcd-é', 'etcd-a;id', 'etcd-ａ'],
};
const ID = (prefix: string): Table => ({
  ok: [`${prefix}-01234567`, `${prefix}-0123456789abcdef0`],
  bad: [`${prefix}-0123456`, `${prefix}-012345678`, `${prefix}-0123456789ABCDEF0`, `${prefix}-0123456789abcdef01`, `${prefix}_01234567`,
    ` ${prefix}-01234567`, `${prefix}-01234567\n`, `${prefix}-0123456789abcdeg0`, prefix === 'i' ? 'vol-01234567' : 'i-01234567'],
});

const SAMPLES: Record<PatternName, Table> = {
  memberName: NAME,
  clusterName: NAME,
  etcdName: {
    ok: ['a', '0', 'etcd-a', 'Master_1', 'ip-10-0-1-5', 'ip-10-0-1-5.eu-west-1.compute.internal', 'a.b', x(253)],
    bad: ['-a', 'a-', '.a', 'a.', '_a', 'a..b', 'a=b', 'a,b', 'a/b', 'a:b', 'a b', 'a@b', x(254), 'etcd-a\n', 'etcd-é', 'a;id'],
  },
  memberIdHex: { ok: ['0', 'a', '8e9e05c52164694d', x(16, 'f')], bad: ['0x1', 'A', x(17, 'f'), 'g', '-1', '1 2', '８'] },
  volumeId: ID('vol'),
  instanceId: ID('i'),
  url: {
    ok: ['http://10.0.0.1:2379', 'https://etcd-a.example.com:2380', 'http://a:1', 'http://a:65535', 'http://a:00080', `http://${x(253)}:1`],
    bad: ['http://a:0', 'http://a:00000', 'http://a:65536', 'http://a:99999', 'http://a:123456', 'http://a', 'http://a:', 'http://a:2379/',
      'http://a:2379/x', 'ftp://a:1', 'HTTP://a:1', 'http://a b:1', 'http://[::1]:2379', 'http://user@a:1', 'http://a:1,http://b:1',
      'http://a:1\n', 'http://é:1', 'http://a:$(id)', `http://${x(600)}:1`,
      // FIXED DELIBERATELY (issue 16): lib.sh accepted a host of 254 to ~500 characters (only
      // its overall cap of 512 applied), validate.ts refused it. validate.ts was right: a DNS
      // name has at most 253 characters (RFC 1035, 1123), so no peer can have such a URL.
      `http://${x(254)}:1`],
  },
  absPath: {
    ok: ['/', '/var/lib/etcd', '/a/.b', '/a/..b', '/a/b..', '/a/...', '/a//b', '/a/./b', '/A-Z_0.9', `/${x(4095)}`],
    bad: ['var', './a', '/a/../b', '/..', '/a/..', '/../a', '/a b', '/a;b', '/a$(x)', '/a\\b', '/a:b', '/a\n', '~/a', '/é', `/${x(4096)}`],
  },
  token: { ok: ['a', 'quorum-keeper', 'a.b_c-D9', '..', x(128)], bad: [x(129), 'a/b', 'a=b', 'a:b', 'a b', 'tok\n', 'tök'] },
  duration: { ok: ['0s', '5s', '1500ms', '1m', '999999s'], bad: ['5', 's', '5h', '1000000s', '5 s', '5S', '-5s', '1.5s', '5s\n'] },
  state: { ok: ['new', 'existing'], bad: ['New', 'newx', 'existin', 'new existing', 'new\n', 'new|existing'] },
  device: {
    ok: ['/dev/xvdf', '/dev/sdf', '/dev/xvdba', '/dev/sdzz'],
    bad: ['/dev/nvme1n1', '/dev/xvd', '/dev/xvdfgh', '/dev/sdf1', '/dev/xvdF', '/dev/../xvdf', 'dev/xvdf', '/dev/xvdf\n', '/dev/xvdé'],
  },
  b64url: {
    ok: ['a', 'aHR0cDovL3gvYQ', 'aHR0cDovL3gvYQ==', 'aHR0cDovL3gvYQ=', 'a-b_c', x(8192, 'A'), `${x(8190, 'A')}==`],
    bad: ['aHR0+cDo', 'a/b', '=', '==', 'a===', 'a=b', x(8193, 'A'), `${x(8191, 'A')}==`, 'YQ==\n', 'YQ== '],
  },
  compressor: { ok: ['auto', 'zstd', 'gzip'], bad: ['xz', 'ZSTD', 'gzip ', 'gz', 'zstd\n'] },
  presignedUrl: {
    ok: [
      'http://x/', 'http://x/a', 'http://x:0/a', 'http://127.0.0.1:4566/b/k?a=b;c=(d)*+,!$\'@:~',
      'https://b.s3.eu-west-1.amazonaws.com/qk/prod/snapshot-20261125T120000Z-etcd-a.db.zst?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIA%2F20261125%2Fs3&X-Amz-Signature=0af',
      `http://x/${x(6144 - 9)}`,
    ],
    bad: [
      'http://x', 'http://x?a', 'https:/x/a', 'file:///etc/passwd', 'http://x:123456/a', 'http://x/a b', 'http://x/a"b', 'http://x/a\\b',
      'http://x/a[b]', 'http://x/a#frag', 'http://x/a^', 'http://x/a`b`', 'http://x/a{b}', 'http://x/a|b', 'http://x/a<b>', 'http://x/é',
      'http://x/a\n', 'http://x/a\nhttp://y/b', 'http://x/$(id -u)', `http://x/${x(6144 - 8)}`,
    ],
  },
};

describe('host/lib.sh and lib/validate.ts: the same strict patterns', () => {
  it('know the same kinds', () => {
    expect(hostKinds()).toEqual(Object.keys(patterns).sort());
    expect(Object.keys(SAMPLES).sort()).toEqual(Object.keys(patterns).sort());
  });

  it('lib.sh has no regex of its own outside qk_pattern but for host.env keys, its pid file and what etcd answers about itself', () => {
    // host.env is written at provisioning time (no Lambda side produces it), the pid file by the
    // scripts themselves, and the member's status parses etcd's own answers on this host (its
    // binary's and /version's version strings, systemd's MainPID); any other value a regex checks
    // in lib.sh belongs in qk_pattern.
    const where = new Set<string>();
    let fn = '';
    for (const line of LIB_TEXT.split('\n')) {
      fn = /^(\w+)\(\) \{/.exec(line)?.[1] ?? fn;
      if (line.includes('=~') && !line.includes('=~ $pattern ')) where.add(fn);
    }
    expect([...where].sort()).toEqual(['qk_binary_version_json', 'qk_etcd_pid', 'qk_load_host_env', 'qk_running_versions_json', 'qk_status_json']);
  });

  const kinds = Object.keys(SAMPLES) as PatternName[];
  it.each(kinds)('%s: both sides accept and refuse the same values', (kind) => {
    const { ok, bad } = SAMPLES[kind];
    const values = [...ok, ...bad, ...HOSTILE];
    const expected = values.map((_, i) => i < ok.length);
    const label = (v: string) => JSON.stringify(v.length > 60 ? `${v.slice(0, 40)}…(${v.length})` : v);
    const table = (verdicts: boolean[]) => values.map((v, i) => `${label(v)} ${verdicts[i] ? 'accepted' : 'refused'}`);
    expect(table(values.map((v) => tsVerdict(kind, v)))).toEqual(table(expected));
    for (const locale of LOCALES) {
      expect({ locale, verdicts: table(hostVerdicts(kind, values, locale)) }).toEqual({ locale, verdicts: table(expected) });
    }
  });
});
