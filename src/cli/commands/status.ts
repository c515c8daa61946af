import { setTimeout as sleep } from 'node:timers/promises';
import type { Argv, CommandModule } from 'yargs';
import { formatQualifiedName } from '../../db/quote.js';
import { readRunStatus, type RunStatus } from '../../rotation/runStatus.js';
import { ExitCode } from '../exitCodes.js';
import { formatTable } from '../output.js';
import { wholeNumberOption } from '../numberOptions.js';
import { withSession } from '../session.js';
import { canDrawOn } from '../terminal.js';
import type { Wrap } from './index.js';

interface StatusArgs {
  run?: number;
  watch: boolean;
}

/** `pg-rekey status`: progress of the latest (or a given) rotation run. */
export function statusCommand(wrap: Wrap): CommandModule {
  return {
    command: 'status',
    describe: 'Show a rotation run: done / total, rate, ETA, ranges, workers and their leases, failures',
    builder: (y: Argv) =>
      y
        .option('run', wholeNumberOption('run', { min: 1, describe: 'Run id (default: the latest rotation)' }))
        .option('watch', { type: 'boolean', default: false, describe: 'Refresh every 2 s until the run has finished or is stopped' }),
    handler: wrap<StatusArgs>(async (ctx, argv) =>
      withSession(ctx, { keys: false }, async (session) => {
        let stoppedBefore = false;
        // As runs record their columns (ResolvedTarget.name), so a run of others is resumed by naming its own.
        const configured = session.config.targets.flatMap((t) => t.columns.map((c) => `${formatQualifiedName({ schema: t.schema, name: t.table })}.${c}`));
        for (;;) {
          const status = await readRunStatus(session.pool, session.schema, argv.run, configured);
          if (!status) {
            ctx.output.result({ run: null }, () => 'No rotation has run yet.');
            return ExitCode.OK;
          }
          if (argv.watch && !ctx.output.json && canDrawOn(process.stdout)) process.stdout.write('\x1b[2J\x1b[H');
          ctx.output.result(status, () => formatStatus(status));
          if (!argv.watch || (status.status !== 'running' && status.status !== 'stopped')) return ExitCode.OK;
          // A worker between two ranges briefly holds no lease: only a run seen
          // stopped twice in a row is left to the next "pg-rekey rotate".
          if (status.status === 'stopped' && stoppedBefore) return ExitCode.OK;
          stoppedBefore = status.status === 'stopped';
          await sleep(WATCH_INTERVAL_MS);
          // `status --watch | head -3`: once the reader has gone there is nobody to refresh for.
          if (ctx.output.readerGone()) return ExitCode.OK;
        }
      }),
    ),
  };
}

const WATCH_INTERVAL_MS = 2000;

function formatStatus(s: RunStatus): string {
  const recorded = s.storedStatus === s.status ? '' : ` (recorded as ${s.storedStatus})`;
  const lines = [
    `Run ${s.runId}: ${s.status}${recorded} · to key ${s.targetKey ?? '?'} · ${s.trigger}${s.reason ? ` (${s.reason})` : ''} · started ${s.startedAt.toISOString()}${s.finishedAt ? ` · finished ${s.finishedAt.toISOString()}` : ''}`,
  ];
  if (s.note) lines.push(s.note);
  for (const t of s.targets) {
    const pct = t.estimatedTotal > 0 ? ` (${Math.min(100, (100 * t.examined) / t.estimatedTotal).toFixed(1)}% of ~${t.estimatedTotal})` : '';
    const eta = t.etaSeconds === null ? '' : ` · ETA ${t.etaSeconds} s`;
    // A succeeded run may still leave rows the application kept rewriting: say so, they are still under the old key.
    const conflicts = t.conflicted > 0 ? ` · ${t.conflicted} conflicts left (rows the application kept rewriting; run "pg-rekey rotate" again)` : '';
    lines.push(
      `\n${t.target}: ${t.examined} rows examined${pct} · ${t.changed} changed · ${t.skipped} NULL/empty skipped · ${t.failed} failed${conflicts} · ${Math.round(t.rate)} rows/s${eta}`,
    );
    lines.push(
      formatTable(
        ['RANGE', 'STATE', 'EXAMINED', 'CHANGED', 'FAILED', 'TO RE-READ', 'CHECKPOINT', 'LEASE OWNER', 'LEASE EXPIRES'],
        t.ranges.map((r) => [r.ordinal, r.status, r.examined, r.changed, r.failed, r.toReread, r.checkpoint?.join(',') ?? '-', r.leaseOwner ?? '', r.leaseExpiresAt?.toISOString() ?? '']),
      ),
    );
    for (const [column, reasons] of Object.entries(t.failures)) {
      lines.push(`  failures in ${column}: ${Object.entries(reasons).map(([r, n]) => `${r} ${n}`).join(', ')}`);
    }
  }
  lines.push(s.workers.length > 0 ? `\nWorkers: ${s.workers.map((w) => `${w.owner} (lease until ${w.leaseExpiresAt.toISOString()})`).join(', ')}` : '\nWorkers: none holding a lease');
  return lines.join('\n');
}
