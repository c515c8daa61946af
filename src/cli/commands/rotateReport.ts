/**
 * What `pg-rekey rotate` prints for people: the outcome of a run and the
 * report of a dry run, per column and source key.
 */
import type { DryRunTargetReport } from '../../rotation/dryRun.js';
import type { RotationOutcome } from '../../rotation/rotate.js';
import { formatTable } from '../output.js';

/**
 * A value already under the target key whose key version was unknown (an
 * application wrote it) is counted from the target key itself: its ciphertext
 * stays as it is and only its key version is recorded. Said so in the tables.
 */
function fromKeyLabel(source: string, targetKeyId: string): string {
  return source === targetKeyId ? `${source} (already; key version set)` : source;
}

/**
 * The summary of a rotation run (rotate's human output). `again`: the command
 * that continues the run (or rotates what it left), with its value options.
 */
export function formatOutcome(targetKeyId: string, o: RotationOutcome, again: string): string {
  const rows: unknown[][] = [];
  for (const [target, columns] of Object.entries(o.bySource)) {
    for (const [column, sources] of Object.entries(columns)) {
      for (const [source, n] of Object.entries(sources)) rows.push([`${target}.${column}`, fromKeyLabel(source, targetKeyId), n]);
    }
  }
  const seconds = o.durationMs / 1000;
  const verdict = {
    succeeded:
      o.conflicted > 0
        ? `Rotation complete but for ${o.conflicted} row(s) the application kept rewriting meanwhile; run "${again}" again to rotate them.`
        : 'Rotation complete.',
    // Not all "could not be decrypted": plaintext and legacy values (without --encrypt-legacy) and
    // values too long for their column are failures too, each recorded with its reason.
    failed: `Rotation finished with ${o.failed} value(s) that could not be rotated — see "pg-rekey status --run ${o.runId}" for each reason.`,
    // With --to: the run may go to a key that is not (or no longer) the primary.
    stopped: `Stopped early at a batch boundary; run "${again}" again to continue.`,
    aborted: `Aborted at the first value that could not be rotated (--on-error abort) — see "pg-rekey status --run ${o.runId}" for its reason.`,
  }[o.status];
  return [
    `Run ${o.runId} → key ${targetKeyId}: ${o.status}`,
    rows.length > 0 ? formatTable(['COLUMN', 'FROM KEY', 'VALUES CHANGED'], rows) : '(no values changed)',
    `examined ${o.examined} rows · skipped ${o.skipped} NULL/empty values · failed ${o.failed} · conflicts left ${o.conflicted}`,
    `this process: ${o.changedHere} rows changed in ${seconds.toFixed(1)} s (${Math.round(o.changedHere / Math.max(seconds, 0.001))} rows/s)`,
    verdict,
  ].join('\n');
}

/**
 * The report of `rotate --dry-run` (its human output). `stopped`: why the dry
 * run stopped early and which targets it did not reach; its counts are partial.
 */
export function formatDryRun(targetKeyId: string, reports: DryRunTargetReport[], stopped: { why: string; notRead: string[] } | null = null): string {
  const lines = [`Dry run to key ${targetKeyId}: nothing was written.`];
  if (stopped) {
    lines.push(
      `${stopped.why[0]!.toUpperCase()}${stopped.why.slice(1)} before the dry run finished: the counts below cover only the rows read before the stop. ` +
        'Run the dry run again for the whole report.',
    );
    if (stopped.notRead.length > 0) lines.push(`Not read: ${stopped.notRead.join(', ')}.`);
  }
  for (const r of reports) {
    const rows: unknown[][] = [];
    for (const [column, sources] of Object.entries(r.wouldChange)) {
      for (const [source, n] of Object.entries(sources)) rows.push([column, fromKeyLabel(source, targetKeyId), n]);
    }
    const partial = r.complete ? '' : ' (stopped before the end of the table)';
    lines.push(`\n${r.target}: ${r.examined} rows examined${partial}, ${r.skipped} NULL/empty values skipped, ${r.alreadyDone} already under ${targetKeyId}`);
    lines.push(rows.length > 0 ? formatTable(['COLUMN', 'FROM KEY', 'WOULD CHANGE'], rows) : '(nothing would change)');
    for (const f of r.failures) lines.push(`  would fail: ${f.column} at ${JSON.stringify(f.rowKey)}: ${f.reason}`);
  }
  return lines.join('\n');
}
