/**
 * A byte budget per batch. A batch's values are read into memory, copied to a
 * crypto thread and back with their new ciphertexts, and written as one text[]
 * parameter per column, which node-postgres builds as ONE string (V8 caps a
 * string near 512 MiB) and PostgreSQL refuses above 1 GB (SQLSTATE 54000). At
 * --batch-size 1000, rows of ~1 MB (encrypted documents) failed the run with
 * exit 70 and took gigabytes of memory per worker.
 *
 * So a range sizes its next keyset read from the value bytes per row its last
 * read carried: the LIMIT is what fits the budget, never above --batch-size
 * and (when the batch holds nothing else) never below 1, so a single row larger
 * than the budget still rotates, alone. The range's first read is sized from a
 * probe of the value lengths of its next few rows (selectValueBytesSql):
 * pg_stats.avg_width is no help, as it measures values as stored, where one
 * moved out of line to TOAST counts as its 18-byte pointer. Rows read past the
 * budget (they grew after rows that were small) are cut from the batch and read
 * again by the next one, so a write never carries more than the budget (or one
 * row). Normal rows of a few hundred bytes never meet the budget: their batches
 * are --batch-size rows, as before.
 *
 * verify sizes its cursor pages the same way (src/verify/readTarget.ts): there
 * the rows are already read when they turn out larger, so nothing is cut.
 *
 * A value's bytes are counted as its characters: the stored formats are ASCII.
 */
import type pg from 'pg';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { selectValueBytesSql, type RowKey } from './batchSql.js';
import { batchLength, type ReadBatch, type ReadRow } from './readRows.js';

/**
 * The value bytes a batch may carry by default. It binds only above ~32 kB per
 * row at --batch-size 1000; with 1 MB documents a batch is ~32 rows, still a
 * few hundred milliseconds of crypto, and a worker's peak memory (the values
 * read, their copies on a crypto thread, the new values and the UPDATE's
 * parameter string) stays at a small multiple of it, ~100–200 MB.
 */
export const DEFAULT_BATCH_MAX_BYTES = 32 * 1024 * 1024;

/** Rows whose value lengths size the first read of a range; also that read's size if the probe saw none. */
export const PROBE_ROWS = 16;

/** The value characters of row `i` (NULL counts 0). */
function rowBytes(batch: ReadBatch, i: number): number {
  let n = 0;
  for (const column of batch.values) n += column[i]?.length ?? 0;
  return n;
}

/** The value characters of a whole batch. */
export function batchBytes(batch: ReadBatch): number {
  let n = 0;
  for (let i = 0; i < batchLength(batch); i++) n += rowBytes(batch, i);
  return n;
}

/** The value characters of rows as verify reads them (NULL counts 0). */
export function readRowsBytes(rows: readonly ReadRow[]): number {
  let n = 0;
  for (const row of rows) for (const value of row.values) n += value?.length ?? 0;
  return n;
}

/** What goes into a batch already before its keyset rows (the rows read again). */
export interface BatchTaken {
  rows: number;
  bytes: number;
}

/** The adaptive LIMIT of one range's (or a dry run's) keyset reads, or of a verify scan's cursor pages. */
export class BatchBudget {
  /** Value bytes per row of the last read; undefined until the probe or a read saw a row. */
  private perRow: number | undefined;

  constructor(
    private readonly maxRows: number,
    private readonly maxBytes: number,
  ) {}

  /** Whether the next read can be sized from rows seen; if not, probe first (see {@link learn}). */
  get sized(): boolean {
    return this.perRow !== undefined;
  }

  /** Learns the bytes per row from `rows` rows of `bytes` value bytes (a probe, or a read). */
  learn(rows: number, bytes: number): void {
    if (rows > 0) this.perRow = bytes / rows;
  }

  /**
   * The LIMIT of the next keyset read. 0 only when rows read again already fill
   * the budget: the keyset then waits a batch, which the caller must not take
   * for the keyset's end.
   */
  nextLimit(taken: BatchTaken): number {
    let limit: number;
    if (this.perRow === undefined) limit = PROBE_ROWS;
    else if (this.perRow === 0) limit = this.maxRows;
    else limit = Math.floor(Math.max(0, this.maxBytes - taken.bytes) / this.perRow);
    return Math.min(this.maxRows, Math.max(taken.rows > 0 ? 0 : 1, limit));
  }

  /**
   * How many leading rows of a keyset read fit the budget after `taken` (at
   * least 1 when nothing else is in the batch); learns from the whole read.
   */
  fit(read: ReadBatch, taken: BatchTaken): number {
    const rows = batchLength(read);
    let bytes = 0;
    let keep = rows;
    for (let i = 0; i < rows; i++) {
      bytes += rowBytes(read, i);
      if (keep === rows && taken.bytes + bytes > this.maxBytes && (i > 0 || taken.rows > 0)) keep = i;
    }
    this.learn(rows, bytes);
    return keep;
  }
}

/**
 * Sizes `budget` from a probe of the value bytes of the next PROBE_ROWS rows
 * of `range` (selectValueBytesSql), unless a read has already sized it: what
 * a range's, a dry run's or a verify scan's first read starts from.
 */
export async function sizeFromProbe(
  db: Pick<pg.ClientBase, 'query'>,
  target: ResolvedTarget,
  budget: BatchBudget,
  range: { after: RowKey | null; upTo: RowKey | null },
): Promise<void> {
  if (budget.sized) return;
  const probe = (await db.query<{ rows: number; bytes: number }>(selectValueBytesSql(target, range, PROBE_ROWS))).rows[0]!;
  budget.learn(probe.rows, probe.bytes);
}
