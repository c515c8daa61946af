/**
 * Statements on the ranges and runs tables of a rotation: claiming a range with
 * a lease, the fenced checkpoint that commits with each batch, releasing and
 * finishing. Workers coordinate only through these rows (DESIGN §3).
 */
import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { RowKey } from './batchSql.js';

/** A range as a worker holds it. */
export interface ClaimedRange {
  id: number;
  target: string;
  lowerBound: RowKey | null;
  upperBound: RowKey | null;
  checkpoint: RowKey | null;
  /** Rows that lost a compare-and-swap and wait to be read again (the checkpoint is past them). */
  recheck: RowKey[];
  /** Batches committed so far; the next batch's checkpoint write is fenced by it. */
  batchesCommitted: number;
  leaseToken: string;
  estimatedRows: number;
}

/**
 * Claims the next pending range of a run, or one whose lease expired (its
 * worker died). SKIP LOCKED lets many workers claim at once without waiting on
 * each other; the new token fences the previous holder out.
 */
export function claimRangeSql(schema: string, runId: number, owner: string, leaseMs: number): Sql {
  const s = quoteIdent(schema);
  return sql(
    `UPDATE ${s}.ranges AS r
        SET status = 'running', lease_owner = $2, lease_token = gen_random_uuid(),
            lease_expires_at = now() + $3 * interval '1 millisecond', updated_at = now()
      WHERE r.id = (
        SELECT id FROM ${s}.ranges
         WHERE run_id = $1
           AND (status = 'pending' OR (status = 'running' AND (lease_expires_at IS NULL OR lease_expires_at < now())))
         ORDER BY ordinal
         LIMIT 1
         FOR UPDATE SKIP LOCKED)
      RETURNING r.id::int AS id, r.target, r.lower_bound AS "lowerBound", r.upper_bound AS "upperBound",
                r.checkpoint, r.recheck, r.batches_committed AS "batchesCommitted",
                r.lease_token::text AS "leaseToken", r.estimated_rows::float8 AS "estimatedRows"`,
    [runId, owner, leaseMs],
  );
}

/** What one batch adds to its range's counters. */
export interface BatchCounts {
  examined: number;
  changed: number;
  skipped: number;
  failed: number;
  conflicted: number;
  /** {"email": {"2025q4": 120}} */
  bySource: Record<string, Record<string, number>>;
}

/** Where a batch leaves its range: the keyset position, the rows to read again, and whether the range is finished. */
export interface RangeAdvance {
  /** The last key read (null: unchanged, the batch only re-read rows). */
  checkpoint: RowKey | null;
  /** Rows that lost the compare-and-swap and are to be read again (replaces the previous list). */
  recheck: RowKey[];
  done: boolean;
}

/**
 * Advances a range's checkpoint, rows to re-read and counters, and renews its
 * lease from this moment (clock_timestamp(): now() is when the batch's
 * transaction began, and one that waited on a row lock longer than the lease
 * renewed it into the past, leaving the range free for the taking) — only if the caller still holds the lease and the range has exactly
 * `batchesCommitted` batches (so a batch retried after its commit went through
 * cannot apply twice). Run inside the batch's transaction: zero rows updated
 * means the caller must roll back (see {@link selectRangeFenceSql}).
 */
export function advanceCheckpointSql(
  schema: string,
  range: { id: number; leaseToken: string; batchesCommitted: number },
  advance: RangeAdvance,
  counts: BatchCounts,
  leaseMs: number,
): Sql {
  return sql(
    `UPDATE ${quoteIdent(schema)}.ranges
        SET checkpoint = coalesce($4::jsonb, checkpoint), recheck = $5::jsonb,
            batches_committed = batches_committed + 1,
            rows_examined = rows_examined + $6, rows_changed = rows_changed + $7,
            rows_skipped = rows_skipped + $8, rows_failed = rows_failed + $9,
            rows_conflicted = rows_conflicted + $10,
            changed_by_source = ${quoteIdent(schema)}.add_counts(changed_by_source, $11::jsonb),
            status = CASE WHEN $12 THEN 'done' ELSE status END,
            lease_owner = CASE WHEN $12 THEN NULL ELSE lease_owner END,
            lease_expires_at = CASE WHEN $12 THEN NULL ELSE clock_timestamp() + $13 * interval '1 millisecond' END,
            updated_at = now()
      WHERE id = $1 AND lease_token = $2::uuid AND batches_committed = $3
      RETURNING id`,
    [
      range.id,
      range.leaseToken,
      range.batchesCommitted,
      advance.checkpoint === null ? null : JSON.stringify(advance.checkpoint),
      JSON.stringify(advance.recheck),
      counts.examined,
      counts.changed,
      counts.skipped,
      counts.failed,
      counts.conflicted,
      JSON.stringify(counts.bySource),
      advance.done,
      leaseMs,
    ],
  );
}

/**
 * A range's state as its lease holder last committed it — null when another
 * worker holds the lease now. Read when a checkpoint write was refused, to tell
 * a lost lease from a batch whose earlier attempt did commit.
 */
export function selectRangeFenceSql(schema: string, range: { id: number; leaseToken: string }): Sql {
  return sql(
    `SELECT checkpoint, recheck, batches_committed AS "batchesCommitted", status = 'done' AS done
       FROM ${quoteIdent(schema)}.ranges WHERE id = $1 AND lease_token = $2::uuid`,
    [range.id, range.leaseToken],
  );
}

/**
 * Takes a share lock on the run row and returns how the run stands. Every
 * batch runs it first and commits only while the run is `running`: once a run
 * is abandoned (`rotate --abandon-open-run`) or aborted no batch of its workers
 * can commit, and the UPDATE that ends it waits for batches in flight.
 */
export function lockRunSql(schema: string, runId: number): Sql {
  return sql(
    `SELECT status, coalesce(summary->>'abandoned' = 'true', false) AS abandoned
       FROM ${quoteIdent(schema)}.runs WHERE id = $1 FOR SHARE`,
    [runId],
  );
}

/** Gives a range back at a clean boundary (stop requested) so the next worker need not wait for expiry. */
export function releaseRangeSql(schema: string, range: { id: number; leaseToken: string }): Sql {
  return sql(
    `UPDATE ${quoteIdent(schema)}.ranges
        SET lease_owner = NULL, lease_expires_at = now(), updated_at = now()
      WHERE id = $1 AND lease_token = $2::uuid AND status = 'running'`,
    [range.id, range.leaseToken],
  );
}

/** Records rows that could not be rotated: where and why, never the value. */
export function insertFailuresSql(
  schema: string,
  runId: number,
  target: string,
  failures: readonly { column: string; rowKey: Record<string, string>; reason: string }[],
): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.failures (run_id, target, column_name, row_key, reason)
     SELECT $1, $2, f.column_name, f.row_key, f.reason
       FROM unnest($3::text[], $4::jsonb[], $5::text[]) AS f(column_name, row_key, reason)`,
    [
      runId,
      target,
      failures.map((f) => f.column),
      failures.map((f) => JSON.stringify(f.rowKey)),
      failures.map((f) => f.reason),
    ],
  );
}

/**
 * A range some worker is working on: claimed, and its lease (renewed with every
 * batch) not yet expired by the server's clock, the one leases are set by.
 * Unqualified, for a query over ranges.
 */
export const HOLDS_LIVE_LEASE = `status = 'running' AND lease_expires_at > now()`;

/** Per-run progress from its ranges: how many are left and the summed counters. */
export function selectRunProgressSql(schema: string, runId: number): Sql {
  return sql(
    `SELECT count(*) FILTER (WHERE status <> 'done')::int AS "openRanges",
            count(*) FILTER (WHERE ${HOLDS_LIVE_LEASE})::int AS "leasedRanges",
            coalesce(sum(rows_examined), 0)::float8 AS examined, coalesce(sum(rows_changed), 0)::float8 AS changed,
            coalesce(sum(rows_skipped), 0)::float8 AS skipped, coalesce(sum(rows_failed), 0)::float8 AS failed,
            coalesce(sum(rows_conflicted), 0)::float8 AS conflicted
       FROM ${quoteIdent(schema)}.ranges WHERE run_id = $1`,
    [runId],
  );
}

/**
 * Every range of a run with its counters, for summaries and `status`
 * (`leaseLive`: see {@link HOLDS_LIVE_LEASE}).
 */
export function selectRangesSql(schema: string, runId: number): Sql {
  return sql(
    `SELECT id::int, target, ordinal, status, checkpoint, estimated_rows::float8 AS "estimatedRows",
            lease_owner AS "leaseOwner", lease_expires_at AS "leaseExpiresAt",
            coalesce(${HOLDS_LIVE_LEASE}, false) AS "leaseLive",
            rows_examined::float8 AS examined, rows_changed::float8 AS changed, rows_skipped::float8 AS skipped,
            rows_failed::float8 AS failed, rows_conflicted::float8 AS conflicted, jsonb_array_length(recheck) AS "toReread",
            changed_by_source AS "bySource", updated_at AS "updatedAt"
       FROM ${quoteIdent(schema)}.ranges WHERE run_id = $1 ORDER BY target, ordinal`,
    [runId],
  );
}

/**
 * The row counters of a run as its ranges hold them, for every UPDATE that
 * ends a run (finished, aborted, abandoned): `WITH totals AS (…)` over the run
 * whose id is the statement's `runIdParam`, and the SET list that copies them.
 * Once its status is final a run is append-only and hash-chained
 * (migrations/0003_audit_trail.sql), so the totals must be written by the very
 * UPDATE that finalises it — a later one would be refused.
 */
export function runTotals(schema: string, runIdParam: string): { cte: string; set: string } {
  return {
    cte: `WITH totals AS (
       SELECT coalesce(sum(rows_examined), 0) AS examined, coalesce(sum(rows_changed), 0) AS changed,
              coalesce(sum(rows_skipped), 0) AS skipped, coalesce(sum(rows_failed), 0) AS failed
         FROM ${quoteIdent(schema)}.ranges WHERE run_id = ${runIdParam})`,
    set: `rows_examined = totals.examined, rows_changed = totals.changed,
            rows_skipped = totals.skipped, rows_failed = totals.failed`,
  };
}

/**
 * Closes a run when every range is done, with totals from its ranges and the
 * caller's summary; a no-op (no row returned) if another worker closed it
 * first or ranges remain.
 */
export function finishRunSql(schema: string, runId: number, summary: Record<string, unknown>): Sql {
  const s = quoteIdent(schema);
  const totals = runTotals(schema, '$1');
  return sql(
    `${totals.cte}
     UPDATE ${s}.runs AS r
        SET status = CASE WHEN totals.failed > 0 THEN 'failed' ELSE 'succeeded' END,
            finished_at = now(), ${totals.set},
            summary = r.summary || $2::jsonb
       FROM totals
      WHERE r.id = $1 AND r.status = 'running'
        AND NOT EXISTS (SELECT 1 FROM ${s}.ranges WHERE run_id = $1 AND status <> 'done')
      RETURNING r.status`,
    [runId, JSON.stringify(summary)],
  );
}

/**
 * Marks a run aborted (--on-error abort) with the totals its ranges reached;
 * its ranges stay as they are for the record.
 */
export function abortRunSql(schema: string, runId: number): Sql {
  const totals = runTotals(schema, '$1');
  return sql(
    `${totals.cte}
     UPDATE ${quoteIdent(schema)}.runs AS r SET status = 'aborted', finished_at = now(), ${totals.set}
       FROM totals
      WHERE r.id = $1 AND r.status = 'running'`,
    [runId],
  );
}
