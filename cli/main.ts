/**
 * quorum-keeper — the operator CLI. Works against real AWS (default credential chain,
 * --region, --profile) and against the local sandbox (--endpoint).
 *
 *   quorum-keeper status       --cluster C                      members, etcd, volumes, LB, newest backup
 *   quorum-keeper plan         --cluster C                      what the reconciler would do (read-only)
 *   quorum-keeper reconcile    --cluster C [--dry-run]          do it now, with the Lambdas' locks (--state-table)
 *   quorum-keeper backup       --cluster C                      take a backup now
 *   quorum-keeper backups list --cluster C                      backups, oldest first
 *   quorum-keeper restore      --cluster C [--snapshot latest|KEY] [--force] [--yes] [--token T]
 *   quorum-keeper restore      --cluster C --rollback TOKEN [--yes]
 *   quorum-keeper recover      --cluster C [--plan] [--yes]     quorum-loss recovery (--plan: read-only)
 *   quorum-keeper adopt        --cluster C [--dry-run] [--yes]   take a running cluster under management (--state-table)
 *   quorum-keeper doctor       --cluster C [--stack S]          preflight: every setting Quorum Keeper relies on, with fixes
 *
 * Human output by default (progress on stderr), --json for scripts (one JSON document on stdout).
 * Exit codes: 0 done (status: healthy), 1 failed (reconcile: a step failed), 2 usage, 3 refused (nothing changed),
 * 4 aborted at the prompt, 5 status: the cluster is degraded (doctor: a check failed).
 *
 * This file: parsing, usage, dispatch, errors → exit codes. args.ts: the flags and their checks;
 * context.ts: the clients and every flow's deps, built once and destroyed once; commands/: one
 * file a command; render/: human and JSON output.
 */
import { createInterface } from 'node:readline/promises';
import { RestoreFailed, RestoreRefused } from '../lib/flows/restore';
import { type CliIo, parse, UsageError, type Values } from './args';
import { backup } from './commands/backup';
import { backupsList } from './commands/backups-list';
import { plan } from './commands/plan';
import { reconcile } from './commands/reconcile';
import { recover } from './commands/recover';
import { restore } from './commands/restore';
import { status } from './commands/status';
import { adopt } from './commands/adopt';
import { doctor } from './commands/doctor';

export type { CliIo } from './args';

const USAGE = `usage: quorum-keeper <command> [options]

commands:
  status        --cluster C                       members, etcd roles and lag, volumes, LB health,
                                                  newest backup; exit 5 when degraded
  plan          --cluster C [--pending-grace-sec N] [--repair-grace-sec N] [--stray-grace-sec N]
                                                  what the reconciler would do now (read-only)
  reconcile     --cluster C [--dry-run] [--pending-grace-sec N] [--repair-grace-sec N] [--stray-grace-sec N]
                                                  what the scheduled reconciler does, now; needs
                                                  --state-table (the same locks as the Lambdas)
  backup        --cluster C                       take a verified backup now
  backups list  --cluster C                       list the cluster's backups (oldest first)
  restore       --cluster C [--snapshot latest|KEY] [--force] [--yes] [--token T]
                                                  disaster recovery from a backup
  restore       --cluster C --rollback TOKEN [--yes]
                                                  put back the data a restore set aside
  recover       --cluster C [--plan] [--yes]      quorum lost: each slot's chance, the verdict and the
                                                  best surviving copy (--plan: show only); then start
                                                  members on their own data, or restore from that copy
  adopt         --cluster C [--dry-run] [--yes]   take a running cluster under management: map each
                                                  etcd member to its slot by peer URL, mark the volumes,
                                                  record the member IDs; needs --state-table
  doctor        --cluster C [--stack S]           preflight of everything Quorum Keeper relies on: each
                                                  check PASS / WARN / FAIL with its fix; exit 5 on a FAIL
                                                  (--bucket: the backup bucket and key; --state-table:
                                                  recorded member IDs)

options:
  --bucket B          backup bucket (or QK_BACKUP_BUCKET; optional for status)
  --prefix P          key prefix (default etcd-backups, or QK_BACKUP_PREFIX)
  --kms-key-id K      KMS key for new backups (default: the bucket's)
  --region R          AWS region (or AWS_REGION)
  --profile P         AWS profile (or AWS_PROFILE)
  --endpoint URL      one endpoint for every AWS service (the local sandbox)
  --json              one JSON document on stdout instead of human output
  --yes               do not ask for confirmation
  --force             restore even though the cluster still has quorum
  --state-table T     the deployment's state table: locks, memory (or QK_STATE_TABLE; plan
                      then also sees flows in progress)
  --alert-topic-arn A alerts go to this SNS topic (or QK_ALERT_TOPIC_ARN; default: stderr)
  --stack S           the deployed CloudFormation stack (or QK_STACK_NAME; doctor checks its
                      functions and rules)
`;

const COMMANDS: Record<string, (v: Values, io: CliIo) => Promise<number>> = {
  status, plan, reconcile, restore, recover, backup, 'backups list': backupsList, backups: backupsList, adopt, doctor,
};

export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    const { values, positionals } = parse(argv);
    if (values.help || positionals.length === 0) {
      io.out(USAGE);
      return positionals.length === 0 && !values.help ? 2 : 0;
    }
    const cmd = positionals.join(' ');
    const command = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
    if (!command) throw new UsageError(`unknown command "${cmd}"`);
    return await command(values, io);
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    if (err instanceof UsageError || (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS'))) {
      io.err(`quorum-keeper: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    if (err instanceof RestoreRefused) {
      io.err(`refused: ${err.message}\nNothing was changed.`);
      return 3;
    }
    if (err instanceof RestoreFailed) {
      io.err(`RESTORE FAILED: ${err.message}`);
      return 1;
    }
    io.err(`quorum-keeper: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

/** The process entry (bin/quorum-keeper.js): real terminal, real environment, exit code. */
export function run(): void {
  const rl = process.stdin.isTTY ? createInterface({ input: process.stdin, output: process.stderr }) : null;
  void main(process.argv.slice(2), {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(`${s}\n`),
    ask: rl ? (q) => rl.question(q) : null,
    env: process.env,
  }).then((code) => {
    rl?.close();
    process.exitCode = code;
  });
}
