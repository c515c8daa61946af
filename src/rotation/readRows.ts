/**
 * Rows as read by selectBatchSql / selectRowsByKeySql (columns k0…, rv, c0,
 * v0, c1, v1…), in two shapes: row by row for verify, and column-wise for
 * the rotator, whose batches travel to a crypto thread and back. Column-wise,
 * a batch is a handful of arrays instead of thousands of small objects: posting
 * it to a worker thread and back cost ~4 ms per 1,000 rows as objects and
 * ~0.4 ms as arrays, and the compare-and-swap UPDATE wants arrays anyway.
 */
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import type { RowKey } from './batchSql.js';

/** A row as read: its key, and per encrypted column the value and key version. */
export interface ReadRow {
  key: RowKey;
  values: (string | null)[];
  versions: (number | null)[];
}

/** Maps query rows to ReadRows. */
export function toReadRows(target: ResolvedTarget, rows: readonly Record<string, unknown>[]): ReadRow[] {
  return rows.map((r) => ({
    key: target.key.map((_, i) => r[`k${i}`] as string),
    values: target.columns.map((_, i) => r[`c${i}`] as string | null),
    versions: target.columns.map((_, i) => r[`v${i}`] as number | null),
  }));
}

/** A batch of rows, column-wise; row i is index i of every array. */
export interface ReadBatch {
  /** Per key column, per row: the key's text form. */
  keys: string[][];
  /** Per row: the row version read (its xmin as text), the compare-and-swap's token. */
  rowVersions: string[];
  /** Per encrypted column, per row: the value read. */
  values: (string | null)[][];
  /** Per encrypted column, per row: its key version. */
  versions: (number | null)[][];
  /**
   * Per row: re-read after losing a compare-and-swap. Its write also carries
   * the digest of each value read, so a change to another column of the row
   * does not make it lose again (see casUpdateSql).
   */
  reexamined: boolean[];
}

/** Maps query rows to a ReadBatch. */
export function toReadBatch(target: ResolvedTarget, rows: readonly Record<string, unknown>[], reexamined = false): ReadBatch {
  return {
    keys: target.key.map((_, k) => rows.map((r) => r[`k${k}`] as string)),
    rowVersions: rows.map((r) => r.rv as string),
    values: target.columns.map((_, c) => rows.map((r) => r[`c${c}`] as string | null)),
    versions: target.columns.map((_, c) => rows.map((r) => r[`v${c}`] as number | null)),
    reexamined: rows.map(() => reexamined),
  };
}

/** How many rows a batch holds. */
export function batchLength(batch: ReadBatch): number {
  return batch.rowVersions.length;
}

/** The key of row `i`. */
export function rowKeyAt(batch: ReadBatch, i: number): RowKey {
  return batch.keys.map((column) => column[i]!);
}

/** The rows of `a`, then those of `b` (same target). */
export function concatBatches(a: ReadBatch, b: ReadBatch): ReadBatch {
  if (batchLength(a) === 0) return b;
  if (batchLength(b) === 0) return a;
  return {
    keys: a.keys.map((column, k) => [...column, ...b.keys[k]!]),
    rowVersions: [...a.rowVersions, ...b.rowVersions],
    values: a.values.map((column, c) => [...column, ...b.values[c]!]),
    versions: a.versions.map((column, c) => [...column, ...b.versions[c]!]),
    reexamined: [...a.reexamined, ...b.reexamined],
  };
}

/** The first `end` rows. */
export function sliceBatch(batch: ReadBatch, end: number): ReadBatch {
  return {
    keys: batch.keys.map((column) => column.slice(0, end)),
    rowVersions: batch.rowVersions.slice(0, end),
    values: batch.values.map((column) => column.slice(0, end)),
    versions: batch.versions.map((column) => column.slice(0, end)),
    reexamined: batch.reexamined.slice(0, end),
  };
}
