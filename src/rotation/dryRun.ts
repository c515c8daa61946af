/**
 * `rotate --dry-run`: reads and decrypts everything a rotation would touch and
 * writes nothing at all — no data, no run, no checkpoints, no failures rows.
 */
import type pg from 'pg';

import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { countAlreadyDoneSql, selectBatchSql, type RowKey } from './batchSql.js';
import { batchLength, rowKeyAt, toReadBatch } from './readRows.js';
import type { BatchTransformer } from './rotateRange.js';
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
 * reports. An aborted `stop` ends the scan between batches, as it ends a rotation.
 */
export async function dryRunTarget(
  pool: pg.Pool,
  target: ResolvedTarget,
  targetVersion: number,
  batchSize: number,
  transform: BatchTransformer,
  stop?: AbortSignal,
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
  let after: RowKey | null = null;
  for (;;) {
    if (stop?.aborted) {
      report.complete = false;
      return report;
    }
    const read = await pool.query<Record<string, unknown>>(selectBatchSql(target, { after, upTo: null }, targetVersion, batchSize));
    const batch = toReadBatch(target, read.rows);
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
    if (batchLength(batch) < batchSize) {
      // The scan skipped the rows with nothing left to do: their values are already done too.
      report.alreadyDone = (await pool.query<{ alreadyDone: number }>(countAlreadyDoneSql(target, targetVersion))).rows[0]!.alreadyDone;
      return report;
    }
    after = rowKeyAt(batch, batchLength(batch) - 1);
  }
}
