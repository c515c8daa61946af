/**
 * A rotation run from one process's point of view: join or start the run, run
 * N range workers that claim ranges until none is left, wait for ranges other
 * processes hold (taking them over if their leases expire), then close the run.
 */
import type pg from 'pg';
import type { Logger } from 'pino';
import { quoteIdent } from '../db/quote.js';
import { closeSilentConnections } from '../db/silentConnections.js';
import { LeaseLostError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { abortRunSql, claimRangeSql, finishRunSql, releaseRangeSql, selectRangesSql, selectRunProgressSql, type BatchCounts, type ClaimedRange } from './rangesSql.js';
import { DEFAULT_BATCH_MAX_BYTES } from './batchBudget.js';
import { DEFAULT_RETRY, withRetry } from './retry.js';
import { rotateRange, type BatchProgress, type BatchTransformer } from './rotateRange.js';
import { Throttle, type ThrottleOptions } from './throttle.js';
import { Wakeup } from './wakeup.js';

/** Tuning and safety options of a rotation (CLI flags map onto these). */
export interface RotationSettings extends ThrottleOptions {
  batchSize: number;
  /** Value bytes a batch may carry (default DEFAULT_BATCH_MAX_BYTES; see batchBudget.ts). */
  batchMaxBytes?: number | undefined;
  workers: number;
  leaseMs: number;
  lockTimeoutMs: number;
  statementTimeoutMs: number;
  onError: 'continue' | 'abort';
  /** Stop cleanly at a batch boundary after this long. */
  maxDurationMs?: number | undefined;
}

/** What `runRotation` needs. */
export interface RunRotationInput {
  pool: pg.Pool;
  schema: string;
  runId: number;
  targetVersion: number;
  targets: readonly ResolvedTarget[];
  transform: BatchTransformer;
  settings: RotationSettings;
  /** Identifies this process in leases (host:pid), for `status`. */
  owner: string;
  /** Aborted on SIGTERM/SIGINT: stop at the next batch boundary. */
  signal?: AbortSignal | undefined;
  /**
   * When the clock of settings.maxDurationMs started (epoch ms; default: now).
   * The CLI starts it before its start-up, so --max-duration bounds the whole command.
   */
  startedAt?: number | undefined;
  onBatch?: (progress: BatchProgress) => void;
  logger?: Logger | undefined;
}

/** How the run stands when this process is finished with it. */
export type RotationStatus = 'succeeded' | 'failed' | 'stopped' | 'aborted';

/** The per-run outcome the CLI reports. */
export interface RotationOutcome {
  runId: number;
  status: RotationStatus;
  examined: number;
  changed: number;
  skipped: number;
  failed: number;
  conflicted: number;
  /** target → column → source key → values changed */
  bySource: Record<string, Record<string, Record<string, number>>>;
  /** Values changed by this process, and how long it took. */
  changedHere: number;
  durationMs: number;
}

/**
 * How much longer than the batches' statement_timeout a connection may stay
 * silent before it is presumed dead: the server's own cancel, and its answer's
 * trip back, come well within it.
 */
const SILENCE_GRACE_MS = 10_000;

/** A range's counters as selectRangesSql returns them. */
type RangeRow = BatchCounts & { target: string };

/** Sums per-range counters into run totals and a per-target, per-column, per-source breakdown. */
export function summariseRanges(ranges: readonly RangeRow[]) {
  const totals = { examined: 0, changed: 0, skipped: 0, failed: 0, conflicted: 0 };
  const bySource: RotationOutcome['bySource'] = {};
  for (const r of ranges) {
    totals.examined += r.examined;
    totals.changed += r.changed;
    totals.skipped += r.skipped;
    totals.failed += r.failed;
    totals.conflicted += r.conflicted;
    const target = (bySource[r.target] ??= {});
    for (const [column, sources] of Object.entries(r.bySource)) {
      const col = (target[column] ??= {});
      for (const [source, n] of Object.entries(sources)) col[source] = (col[source] ?? 0) + n;
    }
  }
  return { ...totals, bySource };
}

/** Runs this process's share of a rotation run to the end, a stop, or an abort. */
export async function runRotation(input: RunRotationInput): Promise<RotationOutcome> {
  const started = Date.now();
  const { pool, schema, runId, settings } = input;
  const deadline = settings.maxDurationMs === undefined ? Infinity : (input.startedAt ?? started) + settings.maxDurationMs;
  let aborted = false;
  // The first unexpected error of any worker stops the others at their next
  // batch boundary (handing their ranges back) before it is rethrown.
  let failure: { error: unknown } | undefined;
  const shouldStop = () => aborted || failure !== undefined || input.signal?.aborted === true || Date.now() >= deadline;
  const retry = {
    ...DEFAULT_RETRY,
    onRetry: (err: unknown, attempt: number) =>
      input.logger?.warn({ sqlstate: (err as { code?: string }).code, attempt }, 'transient database error, retrying'),
  };
  const throttle = new Throttle(settings, pool, shouldStop, input.logger);
  const byName = new Map(input.targets.map((t) => [t.name, t]));
  // Rung whenever a range of this process ends, so idle workers look again at once.
  const rangeEnded = new Wakeup();
  let changedHere = 0;
  const env = {
    pool,
    schema,
    runId,
    targetVersion: input.targetVersion,
    batchSize: settings.batchSize,
    batchMaxBytes: settings.batchMaxBytes ?? DEFAULT_BATCH_MAX_BYTES,
    leaseMs: settings.leaseMs,
    lockTimeoutMs: settings.lockTimeoutMs,
    statementTimeoutMs: settings.statementTimeoutMs,
    onError: settings.onError,
    transform: input.transform,
    throttle,
    retry,
    shouldStop,
    logger: input.logger,
    onBatch: (p: BatchProgress) => {
      changedHere += p.changed;
      input.onBatch?.(p);
    },
  };

  const worker = async (): Promise<void> => {
    while (!shouldStop()) {
      const claimed = (await withRetry(() => pool.query<ClaimedRange>(claimRangeSql(schema, runId, input.owner, settings.leaseMs)), retry)).rows[0];
      if (!claimed) {
        const progress = (await pool.query<{ openRanges: number }>(selectRunProgressSql(schema, runId))).rows[0]!;
        if (progress.openRanges === 0) return;
        // Ranges are held by other workers or hosts: wait; if one dies, its
        // lease expires and this loop takes the range over. A stop rings the
        // doorbell (wakeOnStop); checked here in the same turn, none is missed.
        if (!shouldStop()) await rangeEnded.wait(Math.min(1000, settings.leaseMs / 2));
        continue;
      }
      const target = byName.get(claimed.target);
      if (!target) throw new Error(`range ${claimed.id} names target ${claimed.target}, which is not configured`);
      input.logger?.debug({ rangeId: claimed.id, target: claimed.target }, 'claimed range');
      let outcome;
      try {
        outcome = await rotateRange(env, target, claimed);
      } catch (err) {
        // Another worker took this range over (we stalled past the lease): its
        // batch rolled back; carry on with another range.
        if (!(err instanceof LeaseLostError)) {
          // Hand the range back (best effort) so the next rotate need not wait
          // for the lease to expire; its committed state is intact.
          await pool.query(releaseRangeSql(schema, claimed)).catch(() => undefined);
          throw err;
        }
        input.logger?.warn({ rangeId: claimed.id }, err.message);
        continue;
      } finally {
        rangeEnded.ring();
      }
      if (outcome === 'aborted') aborted = true;
    }
  };
  // One abort listener for the process, not one per waiting worker: with more
  // than ten idle workers (--workers above the number of ranges) Node printed
  // "Possible EventTarget memory leak detected" on stderr.
  const wakeOnStop = () => rangeEnded.ring();
  input.signal?.addEventListener('abort', wakeOnStop, { once: true });
  // A network path that black-holes leaves a statement waiting for an answer
  // that never comes, and the workers (and a stop, taken between batches)
  // with it. Every statement of the batches is bounded by the server's
  // statement_timeout, and the others here are short: a connection silent
  // well beyond it is dead, and is closed so the batch fails over (retried
  // on a fresh connection, or handed back at a stop). With no
  // statement_timeout (0) a long statement is legitimate, and nothing is closed.
  const silence = closeSilentConnections(pool, settings.statementTimeoutMs > 0 ? settings.statementTimeoutMs + SILENCE_GRACE_MS : undefined);
  try {
    await Promise.all(
      Array.from({ length: Math.max(1, settings.workers) }, () =>
        worker().catch((error: unknown) => {
          failure ??= { error };
        }),
      ),
    );
  } finally {
    silence.detach();
    input.signal?.removeEventListener('abort', wakeOnStop);
  }
  if (failure) throw failure.error;

  const ranges = (await pool.query<RangeRow>(selectRangesSql(schema, runId))).rows;
  const summary = summariseRanges(ranges);
  let status: RotationStatus;
  if (aborted) {
    await pool.query(abortRunSql(schema, runId));
    status = 'aborted';
  } else {
    const finished = (await pool.query<{ status: RotationStatus }>(finishRunSql(schema, runId, { bySource: summary.bySource, conflicted: summary.conflicted }))).rows[0];
    if (finished) status = finished.status;
    else {
      const { rows } = await pool.query<{ status: string }>({ text: `SELECT status FROM ${quoteIdent(schema)}.runs WHERE id = $1`, values: [runId] });
      status = rows[0]?.status === 'running' ? 'stopped' : ((rows[0]?.status as RotationStatus) ?? 'stopped');
    }
  }
  return { runId, status, ...summary, changedHere, durationMs: Date.now() - started };
}
