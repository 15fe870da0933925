/**
 * The operator CLI as a test runs it against the sandbox: `main` with a captured terminal, the
 * sandbox's session credentials (an operator's SSO or assumed-role session signs with a session
 * token too), and the flags every call of a suite shares after its own.
 */
import { type CliIo, main } from '../../cli/main';
import { type Sandbox, SANDBOX_SESSION_TOKEN } from '../../sandbox/sandbox';

export interface CliRun { code: number; out: string; err: string }

/** `answer`: what the operator types at a prompt (absent: no terminal). `env`: more environment. */
export function sandboxCli(sandbox: () => Sandbox, shared: () => string[], env: Record<string, string> = {}) {
  return async (args: string[], answer?: string): Promise<CliRun> => {
    let out = '';
    let err = '';
    const io: CliIo = {
      out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`), ask: answer === undefined ? null : () => Promise.resolve(answer),
      env: { AWS_ACCESS_KEY_ID: 'sandbox', AWS_SECRET_ACCESS_KEY: 'sandbox', AWS_SESSION_TOKEN: SANDBOX_SESSION_TOKEN, ...env },
    };
    const code = await main([...args, '--endpoint', sandbox().endpoint, '--region', 'us-east-1', ...shared()], io);
    return { code, out, err };
  };
}
