/**
 * The batch loop over one claimed range. Each batch: read the next rows after
 * the checkpoint (keyset), transform them (crypto), then in ONE transaction
 * write them with a compare-and-swap UPDATE, record failures, and advance the
 * checkpoint fenced by the lease token. A crash loses at most the batch in
 * flight, which the next worker redoes from the committed checkpoint.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { withTransaction } from '../db/withTransaction.js';
import { LeaseLostError, RunConflictError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { casUpdateSql, selectBatchSql, selectRowsByKeySql, type RowKey } from './batchSql.js';
import { addConflictsSql, advanceCheckpointSql, insertFailuresSql, lockOpenRunSql, releaseRangeSql, type BatchCounts, type ClaimedRange } from './rangesSql.js';
import { withRetry, type RetryPolicy } from './retry.js';
import type { Throttle } from './throttle.js';
import type { ReadRow, TransformResult } from './transformBatch.js';

/** Turns read rows into writes; inline or on a worker thread. */
export type BatchTransformer = (target: ResolvedTarget, rows: ReadRow[]) => Promise<TransformResult>;

/** Per-batch progress, as the batch committed. */
export interface BatchProgress extends BatchCounts {
  target: string;
  rangeId: number;
}

/** Everything a range worker needs, shared by the workers of a process. */
export interface RangeWorkerEnv {
  pool: pg.Pool;
  schema: string;
  runId: number;
  targetVersion: number;
  batchSize: number;
  leaseMs: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  onError: 'continue' | 'abort';
  transform: BatchTransformer;
  throttle: Throttle;
  retry: RetryPolicy;
  shouldStop: () => boolean;
  onBatch: (progress: BatchProgress) => void;
  logger?: Logger | undefined;
}

/** How a range ended for this worker. */
export type RangeOutcome = 'done' | 'stopped' | 'aborted';

// A row that keeps losing the compare-and-swap (an application hammering it)
// is left for the next run after this many re-examinations.
const MAX_REEXAMINE = 3;

/** Maps the rows of selectBatchSql / selectRowsByKeySql (k0…, rv, c0, v0…) to ReadRows. */
export function toReadRows(target: ResolvedTarget, rows: Record<string, unknown>[], reexamined = false): ReadRow[] {
  return rows.map((r) => ({
    key: target.key.map((_, i) => r[`k${i}`] as string),
    rowVersion: r.rv as string,
    reexamined,
    values: target.columns.map((_, i) => r[`c${i}`] as string | null),
    versions: target.columns.map((_, i) => r[`v${i}`] as number | null),
  }));
}

function rowKeyObject(target: ResolvedTarget, key: RowKey): Record<string, string> {
  return Object.fromEntries(target.key.map((k, i) => [k.name, key[i]!]));
}

/** A Map key for a row key (JSON keeps composite parts apart). */
const keyId = (key: RowKey): string => JSON.stringify(key);

/**
 * Rotates one range until it is done, a stop is requested (the range is handed
 * back at the batch boundary), or --on-error abort meets a bad value.
 */
export async function rotateRange(env: RangeWorkerEnv, target: ResolvedTarget, range: ClaimedRange): Promise<RangeOutcome> {
  let after = range.checkpoint ?? range.lowerBound;
  let keysetDone = false;
  let pending: RowKey[] = [];
  const attempts = new Map<string, number>();
  for (;;) {
    if (env.shouldStop()) {
      await withRetry(() => env.pool.query(releaseRangeSql(env.schema, range)), env.retry);
      return 'stopped';
    }
    await env.throttle.beforeBatch();
    const rereadRows = pending.length > 0
      ? toReadRows(target, (await withRetry(() => env.pool.query(selectRowsByKeySql(target, pending)), env.retry)).rows, true)
      : [];
    const keysetRows: ReadRow[] = keysetDone
      ? []
      : toReadRows(target, (await withRetry(
          () => env.pool.query(selectBatchSql(target, { after, upTo: range.upperBound }, env.targetVersion, env.batchSize)),
          env.retry,
        )).rows);
    keysetDone ||= keysetRows.length < env.batchSize;
    let rows = [...rereadRows, ...keysetRows];
    let result = await env.transform(target, rows);
    let aborted = false;
    if (env.onError === 'abort' && result.failures.length > 0) {
      // Stop at the first bad value: the rows before it are written, it is recorded.
      const first = Math.min(...result.failures.map((f) => f.row));
      rows = rows.slice(0, first + 1);
      result = await env.transform(target, rows);
      aborted = true;
    }
    const lastKeysetKey = aborted ? rows.at(-1)?.key : keysetRows.at(-1)?.key;
    const checkpoint = lastKeysetKey ?? null;
    const counts = await withRetry(
      () => commitBatch(env, target, range, rows, result, checkpoint, keysetDone && !aborted),
      env.retry,
    );
    // Rows that lost the race are read again (they now hold the application's
    // value) a few times; beyond that the next run picks them up.
    pending = counts.lost.filter((key) => {
      const id = keyId(key);
      const n = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, n);
      return n <= MAX_REEXAMINE;
    });
    const givenUp = counts.lost.length - pending.length;
    if (givenUp > 0) {
      // Recorded apart from the batch: which rows are given up is known only after it committed.
      await withRetry(() => env.pool.query(addConflictsSql(env.schema, range, givenUp)), env.retry);
      counts.batch.conflicted = givenUp;
    }
    if (checkpoint) after = checkpoint;
    env.onBatch({ ...counts.batch, target: target.name, rangeId: range.id });
    await env.throttle.afterBatch(rows.length);
    if (aborted) return 'aborted';
    if (keysetDone && pending.length === 0) return 'done';
  }
}

/** Commits one batch; returns its counters and the keys of rows that lost the compare-and-swap. */
async function commitBatch(
  env: RangeWorkerEnv,
  target: ResolvedTarget,
  range: ClaimedRange,
  rows: ReadRow[],
  result: TransformResult,
  checkpoint: RowKey | null,
  done: boolean,
): Promise<{ batch: BatchCounts; lost: RowKey[] }> {
  return withTransaction(
    env.pool,
    async (client) => {
      if ((await client.query(lockOpenRunSql(env.schema, env.runId))).rowCount !== 1) {
        throw new RunConflictError(`rotation run ${env.runId} is no longer open (abandoned by another rotate); this worker stops`);
      }
      const lost: RowKey[] = [];
      const bySource: Record<string, Record<string, number>> = {};
      let changed = 0;
      if (result.writes.length > 0) {
        const returned = (await client.query<Record<string, unknown>>(casUpdateSql(target, result.writes, env.targetVersion))).rows;
        const byKey = new Map(returned.map((r) => [keyId(target.key.map((_, i) => r[`k${i}`] as string)), r]));
        result.writes.forEach((write, w) => {
          const row = byKey.get(keyId(write.key));
          let lostHere = false;
          let wroteHere = false;
          write.columns.forEach((col, c) => {
            if (!col) return;
            if (row?.[`w${c}`] === true) {
              wroteHere = true;
              const column = target.columns[c]!.name;
              const source = result.sources[w]![c]!;
              (bySource[column] ??= {})[source] = (bySource[column]![source] ?? 0) + 1;
            } else {
              lostHere = true;
            }
          });
          if (wroteHere) changed++;
          if (lostHere) lost.push(write.key);
        });
      }
      if (result.failures.length > 0) {
        await client.query(
          insertFailuresSql(
            env.schema,
            env.runId,
            target.name,
            result.failures.map((f) => ({
              column: target.columns[f.column]!.name,
              rowKey: rowKeyObject(target, rows[f.row]!.key),
              reason: f.reason,
            })),
          ),
        );
      }
      const batch: BatchCounts = {
        examined: rows.length,
        changed,
        skipped: result.skipped,
        failed: result.failures.length,
        conflicted: 0,
        bySource,
      };
      // Fenced by the lease token: if another worker took this range over, this
      // throws and the whole batch, data included, rolls back.
      const fenced = await client.query(advanceCheckpointSql(env.schema, range, checkpoint, batch, done, env.leaseMs));
      if (fenced.rowCount !== 1) {
        throw new LeaseLostError(`lost the lease on range ${range.id} of ${target.name}; another worker continues it`);
      }
      return { batch, lost };
    },
    { lockTimeoutMs: env.lockTimeoutMs, statementTimeoutMs: env.statementTimeoutMs },
  );
}
