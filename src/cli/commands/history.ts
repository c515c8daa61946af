import type { Argv, CommandModule } from 'yargs';
import { withTransaction } from '../../db/withTransaction.js';
import { UsageError } from '../../errors.js';
import {
  describeActor,
  describeKeys,
  describeRecords,
  formatDuration,
  listHistory,
  type HistoryEntry,
} from '../../schema/history.js';
import { verifyRunChain, type ChainVerification } from '../../schema/runChain.js';
import { ExitCode } from '../exitCodes.js';
import { formatTable } from '../output.js';
import { wholeNumberOption } from '../numberOptions.js';
import { withSession } from '../session.js';
import type { Wrap } from './index.js';

interface HistoryArgs {
  since: string | undefined;
  limit: number | undefined;
  verify: boolean;
}

/** Accepts a date (2026-02-01, read as UTC midnight) or a full ISO timestamp. */
function parseSince(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`--since ${value} is not a date — use YYYY-MM-DD or an ISO timestamp`);
  return date;
}

function renderHistory(entries: readonly HistoryEntry[]): string {
  if (entries.length === 0) return 'No runs recorded.';
  return formatTable(
    ['DATE (UTC)', 'TYPE', 'TRIGGER', 'REASON', 'KEYS', 'DURATION', 'RECORDS', 'STATUS', 'ACTOR'],
    entries.map((e) => [
      e.startedAt.toISOString().slice(0, 16).replace('T', ' '),
      e.kind,
      e.trigger,
      e.reason ?? '',
      describeKeys(e),
      e.finishedAt === null ? `${formatDuration(e.durationMs)}…` : formatDuration(e.durationMs),
      describeRecords(e),
      e.status,
      describeActor(e),
    ]),
  );
}

function renderChain(result: ChainVerification): string {
  if (result.ok) {
    return `Audit trail intact: ${result.links} finished run(s) chained; head link ${result.head.seq}, hash ${result.head.hash}.`;
  }
  const [first, ...rest] = result.problems;
  const lines = [`Audit trail BROKEN: ${first!.message}.`];
  for (const p of rest) lines.push(`  also: ${p.message}`);
  return lines.join('\n');
}

/**
 * `pg-rekey history`: the runs as the manual procedure's Rotation History
 * table; `--verify` recomputes the runs hash chain and exits 1 on an edited,
 * deleted or reordered finished run.
 */
export function historyCommand(wrap: Wrap): CommandModule {
  return {
    command: 'history',
    describe: 'The audit trail: every rotate, verify, promote, retire and add run (--verify checks its hash chain)',
    builder: (yargs: Argv) =>
      yargs
        .option('since', { type: 'string', describe: 'Only runs started on or after this date (YYYY-MM-DD, UTC) or ISO timestamp' })
        .option('limit', wholeNumberOption('limit', { min: 1, describe: 'Only the newest N runs (listed oldest first)' }))
        .option('verify', {
          type: 'boolean',
          default: false,
          describe: 'Recompute the hash chain of finished runs; exit 1 naming the first edited, deleted or reordered run',
        }),
    handler: wrap<HistoryArgs>(async (ctx, argv) => {
      const since = parseSince(argv.since);
      // No keys are needed to read the trail: an auditor can run this without any secret.
      return withSession(ctx, { keys: false }, async (session) => {
        if (argv.verify) {
          // One snapshot for the links and the head, so a run finishing meanwhile is not a false alarm.
          const result = await withTransaction(
            session.pool,
            (client) => verifyRunChain(client, session.schema),
            { isolation: 'repeatable read', readOnly: true },
          );
          ctx.output.result(result, () => renderChain(result));
          return result.ok ? ExitCode.OK : ExitCode.FAILURES;
        }
        const entries = await listHistory(session.pool, session.schema, { since, limit: argv.limit });
        ctx.output.result({ runs: entries }, () => renderHistory(entries));
        return ExitCode.OK;
      });
    }),
  };
}
