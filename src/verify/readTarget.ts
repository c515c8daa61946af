/**
 * The read side of verify: stream a target's rows in key order, either all of
 * them or a sample, on one dedicated connection, handing batches to a callback.
 *
 * No read holds a snapshot for long (DESIGN §3): the full scan is cut into
 * keyset chunks, each its own short READ ONLY transaction with a pg-cursor, so
 * memory stays at one cursor page and vacuum is never held back for more than
 * a chunk. While the callback decrypts one page the server already produces the
 * next (the read is issued before the callback runs).
 *
 * A page is also bounded in value bytes, as a rotation's batch is
 * (rotation/batchBudget.ts): 2,000 rows of ~1 MB documents made a page of
 * ~2 GB of strings, and verify died of a V8 heap OOM (no exit code a cron job
 * can trust). Each cursor read is sized from the value bytes per row of the
 * page before it (the first from a probe of the next rows' value lengths),
 * never above the page rows and never below 1, so a single row larger than the
 * budget is still read, alone. Normal rows never meet the budget: their pages
 * are 500 rows, and the scan query is unchanged.
 *
 * Why 500 rows, not more: the rows of the page being decrypted are what
 * survives V8's young-generation collections, and the more survives, the
 * sooner V8 grows that generation towards its 48 MiB ceiling. With pages of
 * 2,000 rows verify's peak RSS rose from 116 MiB on 50,000 rows to 151–163
 * MiB on 500,000; with 500 it stays at 103–104 MiB on both, and the scan is
 * as fast or faster (bench, --only verify).
 */
import type pg from 'pg';
import Cursor from 'pg-cursor';
import { selectRowEstimateSql } from '../db/catalog.js';
import { withTransaction } from '../db/withTransaction.js';
import { BatchBudget, DEFAULT_BATCH_MAX_BYTES, readRowsBytes, sizeFromProbe } from '../rotation/batchBudget.js';
import { selectBatchSql, type RowKey } from '../rotation/batchSql.js';
import { toReadRows, type ReadRow } from '../rotation/readRows.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { compareKeysSql, selectCountSql, selectWindowStartsSql } from './verifySql.js';

/** Receives each page of rows, in key order. */
export type OnRows = (rows: ReadRow[]) => Promise<void> | void;

/** Chunk and page sizes of a scan. */
export interface ScanSizes {
  /** Rows per keyset chunk, i.e. per read-only transaction (default 10,000). */
  chunkRows?: number;
  /** Rows per cursor read (default 500). */
  pageRows?: number;
  /** Value bytes a page may carry (default DEFAULT_PAGE_MAX_BYTES); a single larger row is still a page. */
  pageMaxBytes?: number | undefined;
}

const DEFAULT_CHUNK = 10_000;
const DEFAULT_PAGE = 500;
/** The value bytes of a page by default: a rotation batch's (with the next page in flight, ~2× that is held). */
export const DEFAULT_PAGE_MAX_BYTES = DEFAULT_BATCH_MAX_BYTES;
/** Reads that take no rows read again into account (verify reads each row once). */
const NOTHING_TAKEN = { rows: 0, bytes: 0 };

/** Streams every row of `target` in key order; returns how many rows were read. */
export async function readAllRows(client: pg.ClientBase, target: ResolvedTarget, onRows: OnRows, sizes: ScanSizes = {}): Promise<number> {
  const chunkRows = sizes.chunkRows ?? DEFAULT_CHUNK;
  const pageRows = Math.min(sizes.pageRows ?? DEFAULT_PAGE, chunkRows);
  // One budget for the whole scan: a chunk's first page is sized from the last page of the chunk before.
  const budget = new BatchBudget(pageRows, sizes.pageMaxBytes ?? DEFAULT_PAGE_MAX_BYTES);
  let after: RowKey | null = null;
  let total = 0;
  for (;;) {
    const from: RowKey | null = after;
    const { read, last } = await withTransaction(
      client as pg.Client,
      async (c) => {
        await sizeFromProbe(c, target, budget, { after: from, upTo: null });
        const statement = selectBatchSql(target, { after: from, upTo: null }, null, chunkRows);
        const cursor = c.query(new Cursor<Record<string, unknown>>(statement.text, statement.values));
        let read = 0;
        let last: RowKey | null = null;
        try {
          let limit = budget.nextLimit(NOTHING_TAKEN);
          let next: Promise<Record<string, unknown>[]> | null = cursor.read(limit);
          while (next) {
            const page: Record<string, unknown>[] = await next;
            if (page.length === 0) break;
            const rows = toReadRows(target, page);
            budget.learn(rows.length, readRowsBytes(rows));
            // Fewer rows than asked for: the chunk is read (its LIMIT, or the
            // table's end). Otherwise ask for the next page, sized from this
            // one's bytes per row, before the CPU-bound work on this one.
            if (page.length < limit) next = null;
            else {
              limit = budget.nextLimit(NOTHING_TAKEN);
              next = cursor.read(limit);
            }
            read += rows.length;
            last = rows.at(-1)!.key;
            await onRows(rows);
          }
        } finally {
          await cursor.close();
        }
        return { read, last };
      },
      { readOnly: true },
    );
    total += read;
    if (read < chunkRows || !last) return total;
    after = last;
  }
}

/** How a sample was drawn, and which rows it covered (for the report). */
export interface SampleReport {
  method: 'keyset-windows' | 'full-scan';
  /** Rows asked for (`--sample N`, or the percent of the estimate). */
  requestedRows: number;
  rowsChecked: number;
  /** The table's row estimate the sample was sized from. */
  estimatedRows: number;
  seed: number;
  windowRows: number;
  /** Windows read (the list below keeps the first 1,000). */
  windowCount: number;
  /** Each window: the key it started after (exclusive; null: the table's start), its last key, rows read. */
  windows: { after: RowKey | null; last: RowKey | null; rows: number }[];
}

/** What to sample: a row count or a percentage of the table. */
export type SampleSpec = { rows: number } | { percent: number };

const WINDOW_ROWS = 100;
const MAX_WINDOW_STARTS = 100_000;
const MAX_LISTED_WINDOWS = 1_000;

/**
 * Reads a sample of `target`: random keyset windows of 100 consecutive rows
 * after keys drawn with TABLESAMPLE SYSTEM, so a huge table costs a few
 * percent of its pages plus index range scans, never a full scan. A table no
 * bigger than the sample is simply read whole. Windows that would overlap are
 * clipped, so no row is checked twice, and rows a window could not read past
 * the table's end are taken from the gaps between windows, so N rows are
 * checked whenever the table has them. A window of large values is read and
 * handed on in pieces under the scan's byte budget (see the top of this file).
 * `sizes.chunkRows` applies to that whole-table read only: a window is one
 * short transaction of at most 100 rows anyway.
 */
export async function readSampleRows(
  client: pg.ClientBase,
  target: ResolvedTarget,
  spec: SampleSpec,
  seed: number,
  onRows: OnRows,
  sizes: ScanSizes = {},
): Promise<SampleReport> {
  let estimate = Number((await client.query<{ tuples: number }>(selectRowEstimateSql({ schema: target.schema, name: target.table }))).rows[0]?.tuples ?? -1);
  // reltuples is -1 before the first ANALYZE; then count once (a seq scan, no decryption).
  if (!(estimate >= 0)) estimate = Number((await client.query<{ estimate: number }>(selectCountSql(target))).rows[0]!.estimate);
  const requested = 'rows' in spec ? spec.rows : Math.ceil((estimate * spec.percent) / 100);
  const report: SampleReport = {
    method: 'keyset-windows',
    requestedRows: requested,
    rowsChecked: 0,
    estimatedRows: Math.round(estimate),
    seed,
    windowRows: WINDOW_ROWS,
    windowCount: 0,
    windows: [],
  };
  if (requested >= estimate) {
    report.method = 'full-scan';
    report.rowsChecked = await readAllRows(client, target, onRows, sizes);
    return report;
  }
  const windows = Math.min(MAX_WINDOW_STARTS, Math.max(1, Math.ceil(requested / WINDOW_ROWS)));
  // Draw about three times the starts needed from the sampled pages, then keep
  // `windows` of them at random; SYSTEM sampling is per page, so oversample.
  let percent = Math.min(100, Math.max(0.0001, ((windows * 3) / Math.max(estimate, 1)) * 100));
  let starts: RowKey[] = [];
  for (;;) {
    const p = percent;
    starts = await withTransaction(
      client as pg.Client,
      async (c) =>
        (await c.query<Record<string, string>>(selectWindowStartsSql(target, p, seed, windows))).rows.map((r) =>
          target.key.map((_, i) => r[`k${i}`]!),
        ),
      { readOnly: true },
    );
    // Page sampling of a small table can draw no page at all: widen until enough starts.
    if (starts.length >= windows || percent >= 100) break;
    percent = Math.min(100, percent * 10);
  }
  const budget = new BatchBudget(Math.min(sizes.pageRows ?? DEFAULT_PAGE, WINDOW_ROWS), sizes.pageMaxBytes ?? DEFAULT_PAGE_MAX_BYTES);
  /** Reads up to 100 rows after `after` (or after `clipAfter` when that is later) up to `upTo`; returns the last key read. */
  const readWindow = async (after: RowKey | null, upTo: RowKey | null, clipAfter: RowKey | null = null): Promise<RowKey | null> => {
    const limit = Math.min(WINDOW_ROWS, requested - report.rowsChecked);
    // One read-only transaction per window: index range scans of at most 100
    // rows in all, one unless the values are large (then pieces within the
    // budget, each after the last key of the one before).
    const { rows, last } = await withTransaction(
      client as pg.Client,
      async (c) => {
        let from = clipAfter && after && (await keyIsAfter(c, target, clipAfter, after)) ? clipAfter : after;
        let rows = 0;
        let last: RowKey | null = null;
        while (rows < limit) {
          await sizeFromProbe(c, target, budget, { after: from, upTo });
          const ask = Math.min(limit - rows, budget.nextLimit(NOTHING_TAKEN));
          const piece = toReadRows(target, (await c.query<Record<string, unknown>>(selectBatchSql(target, { after: from, upTo }, null, ask))).rows);
          if (piece.length === 0) break;
          budget.learn(piece.length, readRowsBytes(piece));
          rows += piece.length;
          last = from = piece.at(-1)!.key;
          await onRows(piece);
          if (piece.length < ask) break;
        }
        return { rows, last };
      },
      { readOnly: true },
    );
    if (rows === 0) return null;
    report.rowsChecked += rows;
    report.windowCount++;
    // Bounded like everything else verify keeps: the report must not grow with the table.
    if (report.windows.length < MAX_LISTED_WINDOWS) report.windows.push({ after, last, rows });
    return last;
  };
  const read: { start: RowKey; last: RowKey }[] = [];
  for (const start of starts) {
    if (report.rowsChecked >= requested) break;
    // A window that would overlap the previous one starts where that one ended.
    const last = await readWindow(start, null, read.at(-1)?.last ?? null);
    if (!last) break; // the table's end: the later starts have nothing after them either
    read.push({ start, last });
  }
  // Windows that ran into the table's end (or too few starts) leave rows to
  // check: take them from the gaps after each window, then from before the
  // first start (a window reads after its start, so that row is unread), so
  // the sample still has N rows and no row twice.
  const firstStart = read[0]?.start ?? starts[0];
  const gaps = read.map((w, i) => ({ after: w.last as RowKey | null, upTo: read[i + 1]?.start ?? null }));
  if (firstStart) gaps.push({ after: null, upTo: firstStart });
  for (const gap of gaps) {
    let after = gap.after;
    while (report.rowsChecked < requested) {
      const last = await readWindow(after, gap.upTo);
      if (!last) break;
      after = last;
    }
  }
  return report;
}

/** Whether key `a` sorts after key `b`, by the server's ordering of the key columns' types. */
async function keyIsAfter(c: pg.ClientBase, target: ResolvedTarget, a: RowKey, b: RowKey): Promise<boolean> {
  return (await c.query<{ after: boolean }>(compareKeysSql(target, a, b))).rows[0]!.after;
}
