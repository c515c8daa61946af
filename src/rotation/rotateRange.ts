/**
 * The batch loop over one claimed range. Each batch: read the rows waiting to
 * be read again and the next rows after the checkpoint (keyset), transform them
 * (crypto), then in ONE transaction write them with a compare-and-swap UPDATE,
 * record failures, and advance the range — checkpoint, rows to read again,
 * counters — fenced by the lease token and the batch count. A crash loses at
 * most the batch in flight, which the next worker redoes from the committed state.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { withTransaction } from '../db/withTransaction.js';
import { LeaseLostError, RunConflictError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { BatchBudget, batchBytes, sizeFromProbe } from './batchBudget.js';
import { casUpdateSql, selectBatchSql, selectRowsByKeySql, type RowKey } from './batchSql.js';
import { batchLength, concatBatches, rowKeyAt, sliceBatch, toReadBatch, type ReadBatch } from './readRows.js';
import {
  advanceCheckpointSql,
  insertFailuresSql,
  lockRunSql,
  releaseRangeSql,
  selectRangeFenceSql,
  type BatchCounts,
  type ClaimedRange,
  type RangeAdvance,
} from './rangesSql.js';
import { asBatchRejected } from './rejectedBatch.js';
import { asTargetChanged } from './targetChanged.js';
import { isTransient, withRetry, type RetryPolicy } from './retry.js';
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
  /** Value bytes a batch may carry (see batchBudget.ts); a single larger row still makes a batch. */
  batchMaxBytes: number;
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

/** The range as last committed: where the keyset continues, what to read again, how many batches. */
interface RangeState {
  after: RowKey | null;
  recheck: RowKey[];
  batchesCommitted: number;
}

/**
 * A batch's checkpoint write found the range one batch further than expected
 * while this worker still holds the lease: an earlier attempt of this very
 * batch committed and only its reply was lost. This attempt rolls back.
 */
class BatchAlreadyCommitted extends Error {
  constructor(readonly state: RangeState & { done: boolean }) {
    super('the batch was already committed by an earlier attempt');
  }
}

/**
 * Rotates one range until it is done, a stop is requested (the range is handed
 * back at the batch boundary), or --on-error abort meets a bad value.
 */
export async function rotateRange(env: RangeWorkerEnv, target: ResolvedTarget, range: ClaimedRange): Promise<RangeOutcome> {
  let state: RangeState = { after: range.checkpoint ?? range.lowerBound, recheck: range.recheck, batchesCommitted: range.batchesCommitted };
  let keysetDone = false;
  const budget = new BatchBudget(env.batchSize, env.batchMaxBytes);
  // Re-examinations per row by this worker (a worker taking the range over starts afresh).
  const attempts = new Map<string, number>();
  for (;;) {
    // Checked after the throttle's wait, which a stop cuts short: a stop while
    // waiting for a lagging replica (or the rate budget) must not write one
    // more batch on the way out.
    await env.throttle.beforeBatch();
    if (env.shouldStop()) return handBack(env, range);
    let reread: ReadBatch;
    let keyset: ReadBatch;
    let exhausted: boolean;
    try {
      ({ reread, keyset, exhausted } = await withRetry(() => readBatch(env, target, state, keysetDone, range.upperBound, budget), stopAware(env)));
    } catch (err) {
      if (env.shouldStop() && isTransient(err)) return handBack(env, range);
      // A table dropped, renamed or altered by another session fails here or in the UPDATE.
      throw asTargetChanged(err, target);
    }
    keysetDone ||= exhausted;
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
    // The batch is the re-read rows (behind the checkpoint) and then the keyset
    // rows: the new checkpoint is its last row if that is a keyset row — also
    // when --on-error abort cut the batch short, which may leave none.
    const checkpoint = batchLength(batch) > batchLength(reread) ? rowKeyAt(batch, batchLength(batch) - 1) : null;
    // The lease and the batch count this batch's checkpoint write is fenced by.
    const asCommitted = { ...range, batchesCommitted: state.batchesCommitted };
    let committed;
    try {
      committed = await withRetry(
        () => commitBatch(env, target, asCommitted, batch, result, { checkpoint, keysetDone: keysetDone && !aborted, aborting: aborted, attempts }),
        stopAware(env),
      );
    } catch (err) {
      if (err instanceof BatchAlreadyCommitted) {
        // Carry on from what the database holds; this batch's counters are
        // already in the range (the progress display just misses them).
        if (err.state.done) return 'done';
        state = err.state;
        keysetDone = false;
        continue;
      }
      // The batch rolled back whole: a stop that came while it kept failing is taken here (see stopAware).
      if (env.shouldStop() && isTransient(err)) return handBack(env, range);
      throw asBatchRejected(err, target, [...batch.values.flat(), ...result.values.flat()]);
    }
    for (const key of committed.recheck) attempts.set(keyId(key), (attempts.get(keyId(key)) ?? 0) + 1);
    state = { after: checkpoint ?? state.after, recheck: committed.recheck, batchesCommitted: state.batchesCommitted + 1 };
    env.onBatch({ ...committed.counts, target: target.name, rangeId: range.id });
    await env.throttle.afterBatch(batchLength(batch));
    if (aborted) {
      // The run ends aborted: hand the range back, or until its lease expired
      // `status` listed this exited process as a worker holding it.
      await withRetry(() => env.pool.query(releaseRangeSql(env.schema, range)), env.retry);
      return 'aborted';
    }
    if (committed.done) return 'done';
  }
}

/**
 * The batch's retry policy: no more retries once a stop is requested. A stop
 * (--max-duration, a signal) that comes while a batch keeps failing
 * transiently — a row or table lock an application holds longer than every
 * lock timeout — is taken at this boundary (exit 75, resumable) instead of
 * retrying past the deadline and failing the run (exit 69) in a deploy hook.
 */
function stopAware(env: RangeWorkerEnv): RetryPolicy {
  return { ...env.retry, giveUp: env.shouldStop };
}

/**
 * How long a batch's transaction may sit idle before the server ends it. A
 * worker cut off mid-batch by a network that black-holes (no RST) leaves its
 * transaction open, holding the batch's rows and its range's row: the lease
 * expires, but another worker's claim skips the locked range (SKIP LOCKED) and
 * the run could not finish until the server's TCP gave up — hours with the
 * kernel's keepalive defaults. A batch sends its statements back to back, so
 * idling as long as one statement may run means its client is gone. None when
 * --statement-timeout is 0 (and a setting for the role then applies).
 */
function idleTimeoutOf(env: RangeWorkerEnv): number | undefined {
  return env.statementTimeoutMs > 0 ? env.statementTimeoutMs : undefined;
}

/** Hands the range back at a stop, so the next worker need not wait for its lease to expire. */
async function handBack(env: RangeWorkerEnv, range: ClaimedRange): Promise<'stopped'> {
  await withRetry(() => env.pool.query(releaseRangeSql(env.schema, range)), env.retry);
  return 'stopped';
}

/**
 * Reads a batch: the rows waiting to be read again, then the next keyset rows,
 * as many as the byte budget leaves room for (see batchBudget.ts). `exhausted`:
 * the keyset read returned fewer rows than it asked for and none was cut, so
 * the range has no keyset rows left. The LIMIT varies with the values' size,
 * so only the read's own LIMIT says that, never --batch-size.
 *
 * In a read-only transaction under the batch's lock and statement timeouts,
 * like its write: a bare read queued behind an application's ACCESS EXCLUSIVE
 * lock (a migration's ALTER TABLE) waited with no limit, and held the run past
 * --max-duration for as long as the lock lasted.
 */
function readBatch(
  env: RangeWorkerEnv,
  target: ResolvedTarget,
  state: RangeState,
  keysetDone: boolean,
  upTo: RowKey | null,
  budget: BatchBudget,
): Promise<{ reread: ReadBatch; keyset: ReadBatch; exhausted: boolean }> {
  return withTransaction(
    env.pool,
    async (client) => {
      const reread = state.recheck.length > 0
        ? toReadBatch(target, (await client.query(selectRowsByKeySql(target, state.recheck))).rows, true)
        : toReadBatch(target, []);
      if (keysetDone) return { reread, keyset: toReadBatch(target, []), exhausted: true };
      const range = { after: state.after, upTo };
      await sizeFromProbe(client, target, budget, range);
      const taken = { rows: batchLength(reread), bytes: batchBytes(reread) };
      const limit = budget.nextLimit(taken);
      // The rows read again fill the budget: the keyset waits for the next batch.
      if (limit === 0) return { reread, keyset: toReadBatch(target, []), exhausted: false };
      const read = toReadBatch(target, (await client.query(selectBatchSql(target, range, env.targetVersion, limit))).rows);
      const keep = budget.fit(read, taken);
      if (keep === batchLength(read)) return { reread, keyset: read, exhausted: keep < limit };
      return { reread, keyset: sliceBatch(read, keep), exhausted: false };
    },
    { readOnly: true, lockTimeoutMs: env.lockTimeoutMs, statementTimeoutMs: env.statementTimeoutMs, idleInTransactionTimeoutMs: idleTimeoutOf(env) },
  );
}

/** Splits the rows (batch indexes) that lost the race into those to read again and those given up (left for the next run). */
function triageLosers(batch: ReadBatch, lost: number[], attempts: ReadonlyMap<string, number>): { reread: number[]; givenUp: number } {
  const reread = lost.filter((row) => (attempts.get(keyId(rowKeyAt(batch, row))) ?? 0) < MAX_REEXAMINE);
  return { reread, givenUp: lost.length - reread.length };
}

/**
 * The failures and NULL/empty count a batch records. A row going back to be
 * read again is counted when it is read for the last time, not also now: a
 * corrupted email beside a mobno that lost its compare-and-swap was recorded
 * twice in the failures table, and the run's failed and skipped counts grew
 * with every re-read. Under --on-error abort the range ends with this batch,
 * so everything it found is recorded.
 */
function countedNow(batch: ReadBatch, result: TransformResult, reread: readonly number[], aborting: boolean) {
  if (reread.length === 0 || aborting) return { failures: result.failures, skipped: result.skipped };
  const later = new Set(reread);
  let skipped = result.skipped;
  for (const row of later) for (const column of batch.values) if (column[row] == null || column[row] === '') skipped--;
  return { failures: result.failures.filter((f) => !later.has(f.row)), skipped };
}

/**
 * Commits one batch: the compare-and-swap writes, the failures, and the
 * range's new state (checkpoint, rows to read again, counters). Returns the
 * batch's counters, the rows to read again, and whether the range is done.
 */
async function commitBatch(
  env: RangeWorkerEnv,
  target: ResolvedTarget,
  range: ClaimedRange,
  batch: ReadBatch,
  result: TransformResult,
  position: { checkpoint: RowKey | null; keysetDone: boolean; aborting: boolean; attempts: ReadonlyMap<string, number> },
): Promise<{ counts: BatchCounts; recheck: RowKey[]; done: boolean }> {
  return withTransaction(
    env.pool,
    async (client) => {
      const run = (await client.query<{ status: string; abandoned: boolean }>(lockRunSql(env.schema, env.runId))).rows[0];
      if (run?.status === 'succeeded' || run?.status === 'failed') {
        // A run finishes only when every range is done, this one included: this
        // worker stalled past its lease and another finished the range.
        throw new LeaseLostError(`lost the lease on range ${range.id} of ${target.name}; another worker finished it`);
      }
      if (run?.status !== 'running') {
        const why = run?.abandoned ? 'abandoned by "rotate --abandon-open-run"' : 'aborted by another process (--on-error abort)';
        throw new RunConflictError(`rotation run ${env.runId} was ${why}; this worker stops`);
      }
      const lost: number[] = [];
      const bySource: Record<string, Record<string, number>> = {};
      let changed = 0;
      if (result.writeRows.length > 0) {
        const update = casUpdateSql(target, writesOf(batch, result), env.targetVersion);
        const returned = (await client.query<Record<string, unknown>>(update).catch((err: unknown) => {
          throw asTargetChanged(err, target);
        })).rows;
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
          if (lostHere) lost.push(row);
        });
      }
      const { reread, givenUp } = triageLosers(batch, lost, position.attempts);
      const recheck = reread.map((row) => rowKeyAt(batch, row));
      const { failures, skipped } = countedNow(batch, result, reread, position.aborting);
      if (failures.length > 0) {
        await client.query(
          insertFailuresSql(
            env.schema,
            env.runId,
            target.name,
            failures.map((f) => ({
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
        skipped,
        failed: failures.length,
        conflicted: givenUp,
        bySource,
      };
      // A range is done only when nothing of it is left to read again.
      const advance: RangeAdvance = { checkpoint: position.checkpoint, recheck, done: position.keysetDone && recheck.length === 0 };
      // Fenced by the lease token and the batch count: if another worker took
      // this range over, or this batch already committed, this throws and the
      // whole batch, data included, rolls back.
      const fenced = await client.query(advanceCheckpointSql(env.schema, range, advance, counts, env.leaseMs));
      if (fenced.rowCount !== 1) {
        const now = (await client.query<{ checkpoint: RowKey | null; recheck: RowKey[]; batchesCommitted: number; done: boolean }>(selectRangeFenceSql(env.schema, range))).rows[0];
        if (now && now.batchesCommitted === range.batchesCommitted + 1) {
          throw new BatchAlreadyCommitted({ after: now.checkpoint ?? range.lowerBound, recheck: now.recheck, batchesCommitted: now.batchesCommitted, done: now.done });
        }
        throw new LeaseLostError(`lost the lease on range ${range.id} of ${target.name}; another worker continues it`);
      }
      return { counts, recheck, done: advance.done };
    },
    { lockTimeoutMs: env.lockTimeoutMs, statementTimeoutMs: env.statementTimeoutMs, idleInTransactionTimeoutMs: idleTimeoutOf(env), writesKeyVersions: true },
  );
}
