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
import { batchLength, concatBatches, rowKeyAt, sliceBatch, toReadBatch, type ReadBatch } from './readRows.js';
import { addConflictsSql, advanceCheckpointSql, insertFailuresSql, lockOpenRunSql, releaseRangeSql, type BatchCounts, type ClaimedRange } from './rangesSql.js';
import { asBatchRejected } from './rejectedBatch.js';
import { withRetry, type RetryPolicy } from './retry.js';
import type { Throttle } from './throttle.js';
import { writesOf, type TransformResult } from './transformBatch.js';

/** Turns a batch as read into writes; inline or on a worker thread. */
export type BatchTransformer = (target: ResolvedTarget, batch: ReadBatch) => Promise<TransformResult>;

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
    const reread: ReadBatch = pending.length > 0
      ? toReadBatch(target, (await withRetry(() => env.pool.query(selectRowsByKeySql(target, pending)), env.retry)).rows, true)
      : toReadBatch(target, []);
    const keyset: ReadBatch = keysetDone
      ? toReadBatch(target, [])
      : toReadBatch(target, (await withRetry(
          () => env.pool.query(selectBatchSql(target, { after, upTo: range.upperBound }, env.targetVersion, env.batchSize)),
          env.retry,
        )).rows);
    keysetDone ||= batchLength(keyset) < env.batchSize;
    let batch = concatBatches(reread, keyset);
    let result = await env.transform(target, batch);
    let aborted = false;
    if (env.onError === 'abort' && result.failures.length > 0) {
      // Stop at the first bad value: the rows before it are written, it is recorded.
      const first = Math.min(...result.failures.map((f) => f.row));
      batch = sliceBatch(batch, first + 1);
      result = await env.transform(target, batch);
      aborted = true;
    }
    const lastKeysetRow = aborted ? batchLength(batch) - 1 : batchLength(keyset) - 1;
    const checkpoint = lastKeysetRow >= 0 ? rowKeyAt(aborted ? batch : keyset, lastKeysetRow) : null;
    const counts = await withRetry(
      () => commitBatch(env, target, range, batch, result, checkpoint, keysetDone && !aborted),
      env.retry,
    ).catch((err: unknown) => {
      throw asBatchRejected(err, target, [...batch.values.flat(), ...result.values.flat()]);
    });
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
    await env.throttle.afterBatch(batchLength(batch));
    if (aborted) return 'aborted';
    if (keysetDone && pending.length === 0) return 'done';
  }
}

/** Commits one batch; returns its counters and the keys of rows that lost the compare-and-swap. */
async function commitBatch(
  env: RangeWorkerEnv,
  target: ResolvedTarget,
  range: ClaimedRange,
  batch: ReadBatch,
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
      if (result.writeRows.length > 0) {
        const returned = (await client.query<Record<string, unknown>>(casUpdateSql(target, writesOf(batch, result), env.targetVersion))).rows;
        const byWrite = new Map(returned.map((r) => [r.i as number, r]));
        result.writeRows.forEach((row, w) => {
          const written = byWrite.get(w);
          let lostHere = false;
          let wroteHere = false;
          target.columns.forEach((column, c) => {
            if (result.values[c]![w] === null) return;
            if (written?.[`w${c}`] === true) {
              wroteHere = true;
              const source = result.sources[c]![w]!;
              const counts = (bySource[column.name] ??= {});
              counts[source] = (counts[source] ?? 0) + 1;
            } else {
              lostHere = true;
            }
          });
          if (wroteHere) changed++;
          if (lostHere) lost.push(rowKeyAt(batch, row));
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
              rowKey: rowKeyObject(target, rowKeyAt(batch, f.row)),
              reason: f.reason,
            })),
          ),
        );
      }
      const counts: BatchCounts = {
        examined: batchLength(batch),
        changed,
        skipped: result.skipped,
        failed: result.failures.length,
        conflicted: 0,
        bySource,
      };
      // Fenced by the lease token: if another worker took this range over, this
      // throws and the whole batch, data included, rolls back.
      const fenced = await client.query(advanceCheckpointSql(env.schema, range, checkpoint, counts, done, env.leaseMs));
      if (fenced.rowCount !== 1) {
        throw new LeaseLostError(`lost the lease on range ${range.id} of ${target.name}; another worker continues it`);
      }
      return { batch: counts, lost };
    },
    { lockTimeoutMs: env.lockTimeoutMs, statementTimeoutMs: env.statementTimeoutMs },
  );
}
