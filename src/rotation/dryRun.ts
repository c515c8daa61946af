/**
 * `rotate --dry-run`: reads and decrypts everything a rotation would touch and
 * writes nothing at all — no data, no run, no checkpoints, no failures rows.
 */
import type pg from 'pg';

import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { BatchBudget, DEFAULT_BATCH_MAX_BYTES, sizeFromProbe } from './batchBudget.js';
import { countAlreadyDoneSql, selectBatchSql, type RowKey } from './batchSql.js';
import { batchLength, rowKeyAt, sliceBatch, toReadBatch } from './readRows.js';
import type { BatchTransformer } from './rotateRange.js';
import { asTargetChanged } from './targetChanged.js';
import type { Throttle } from './throttle.js';
import type { RotateFailureReason } from './transformBatch.js';

/** What a rotation would do to one target. */
export interface DryRunTargetReport {
  target: string;
  /**
   * False when a stop (SIGTERM, SIGINT, --max-duration) ended the scan before
   * the end of the target: the counts cover only the rows read before it.
   */
  complete: boolean;
  examined: number;
  skipped: number;
  /**
   * Values already under the target key by their key version, over the whole
   * table (when the scan was stopped: only in the rows it read).
   */
  alreadyDone: number;
  /** column → source key → values that would change */
  wouldChange: Record<string, Record<string, number>>;
  /** column → reason → count */
  failuresByReason: Record<string, Partial<Record<RotateFailureReason, number>>>;
  /** The first failures, by row key (never the value). */
  failures: { column: string; rowKey: Record<string, string>; reason: RotateFailureReason }[];
}

const MAX_LISTED_FAILURES = 100;

/**
 * Scans one target in key order, batch by batch (no long snapshot), and
 * reports. Its batches are sized as a rotation's, under the same byte budget
 * (batchBudget.ts). An aborted `stop` ends the scan between batches, as it
 * ends a rotation. A `throttle` (--max-rate, --pause-ms) paces its batches as
 * it paces a rotation's: a rehearsal on a busy primary reads no faster than
 * the real run would.
 */
export async function dryRunTarget(
  pool: pg.Pool,
  target: ResolvedTarget,
  targetVersion: number,
  batchSize: number,
  transform: BatchTransformer,
  stop?: AbortSignal,
  batchMaxBytes = DEFAULT_BATCH_MAX_BYTES,
  throttle?: Throttle,
): Promise<DryRunTargetReport> {
  const report: DryRunTargetReport = {
    target: target.name,
    complete: true,
    examined: 0,
    skipped: 0,
    alreadyDone: 0,
    wouldChange: {},
    failuresByReason: {},
    failures: [],
  };
  // A table dropped or altered by another session under the scan: exit 2 naming it, not an internal error.
  const changed = (err: unknown): never => {
    throw asTargetChanged(err, target, 'dry-run');
  };
  let after: RowKey | null = null;
  const budget = new BatchBudget(batchSize, batchMaxBytes);
  const nothingTaken = { rows: 0, bytes: 0 };
  for (;;) {
    // Checked after the throttle's wait, which a stop cuts short, as a rotation does.
    await throttle?.beforeBatch();
    if (stop?.aborted) {
      report.complete = false;
      return report;
    }
    await sizeFromProbe(pool, target, budget, { after, upTo: null }).catch(changed);
    const limit = budget.nextLimit(nothingTaken);
    const read = toReadBatch(
      target,
      (await pool.query<Record<string, unknown>>(selectBatchSql(target, { after, upTo: null }, targetVersion, limit)).catch(changed)).rows,
    );
    // Rows past the budget are left to the next batch (read again there).
    const keep = budget.fit(read, nothingTaken);
    const batch = keep < batchLength(read) ? sliceBatch(read, keep) : read;
    const result = await transform(target, batch);
    report.examined += batchLength(batch);
    report.skipped += result.skipped;
    report.alreadyDone += result.alreadyDone;
    target.columns.forEach((column, c) =>
      result.values[c]!.forEach((value, w) => {
        if (value === null) return;
        const counts = (report.wouldChange[column.name] ??= {});
        const source = result.sources[c]![w]!;
        counts[source] = (counts[source] ?? 0) + 1;
      }),
    );
    for (const f of result.failures) {
      const column = target.columns[f.column]!.name;
      const reasons = (report.failuresByReason[column] ??= {});
      reasons[f.reason] = (reasons[f.reason] ?? 0) + 1;
      if (report.failures.length < MAX_LISTED_FAILURES) {
        const key = rowKeyAt(batch, f.row);
        report.failures.push({ column, rowKey: Object.fromEntries(target.key.map((k, i) => [k.name, key[i]!])), reason: f.reason });
      }
    }
    // Fewer rows than asked for, none cut: the scan is at the end (the LIMIT
    // varies with the values' size, so only its own says so, not batchSize).
    if (batchLength(read) < limit && keep === batchLength(read)) {
      // The scan skipped the rows with nothing left to do: their values are already done too.
      report.alreadyDone = (await pool.query<{ alreadyDone: number }>(countAlreadyDoneSql(target, targetVersion)).catch(changed)).rows[0]!.alreadyDone;
      return report;
    }
    await throttle?.afterBatch(batchLength(batch));
    after = rowKeyAt(batch, batchLength(batch) - 1);
  }
}
