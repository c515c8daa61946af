import { quoteIdent } from '../db/quote.js';
import { sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { UsageError } from '../errors.js';
import { joinCommand } from './planRun.js';
import { selectRangesSql } from './rangesSql.js';

/** One range as `status` shows it. */
export interface RangeStatus {
  ordinal: number;
  /**
   * `stopped`: claimed before, but no worker holds a live lease on it now (its
   * process stopped and handed it back, or died and the lease expired); the
   * next worker to claim it continues from its checkpoint. Stored as `running`.
   */
  status: 'pending' | 'running' | 'stopped' | 'done';
  checkpoint: string[] | null;
  examined: number;
  changed: number;
  failed: number;
  /** Rows that lost a compare-and-swap to an application write and wait to be read again. */
  toReread: number;
  leaseOwner: string | null;
  leaseExpiresAt: Date | null;
}

/** Progress of one target (table) within a run. */
export interface TargetStatus {
  target: string;
  examined: number;
  estimatedTotal: number;
  changed: number;
  skipped: number;
  failed: number;
  /**
   * Rows given up after losing the compare-and-swap to the application three
   * times: left under their old key for the next run, even in a `succeeded` run.
   */
  conflicted: number;
  /** Rows examined per second since the run was last started or resumed (0 while it is stopped). */
  rate: number;
  /** Seconds left at that rate, or null when unknown or done. */
  etaSeconds: number | null;
  ranges: RangeStatus[];
  /** Failures recorded for this target, per column and reason. */
  failures: Record<string, Record<string, number>>;
}

/** A rotation run's progress. */
export interface RunStatus {
  runId: number;
  /**
   * How the run stands: the stored status, except that an open run on which
   * no range holds a live lease is `stopped` (see {@link deriveRunStatus}).
   */
  status: string;
  /** The status as the runs row records it: `running` for as long as the run is open. */
  storedStatus: string;
  /** What to do about a stopped run; null otherwise. */
  note: string | null;
  targetKey: string | null;
  trigger: string;
  reason: string | null;
  startedAt: Date;
  finishedAt: Date | null;
  targets: TargetStatus[];
  /** Workers holding live leases: owner → expiry. */
  workers: { owner: string; leaseExpiresAt: Date }[];
}

/** The run row as selected (its id, before the targets and workers are gathered). */
type RunRow = Omit<RunStatus, 'runId' | 'targets' | 'workers' | 'storedStatus' | 'note'> & {
  id: number;
  kind: string;
  /** Set by startOrJoinRun when a process resumed the run (planRun.ts markResumedSql). */
  resumed: { at: string; examined: Record<string, number> } | null;
  /** The server's clock, which started_at and the resumption are read by. */
  readAt: Date;
  /** The options the run was started with (--encrypt-legacy, --on-error…). */
  options: Record<string, unknown> | null;
  /** Its columns, "schema.table.column" (runs.targets). */
  columns: string[] | null;
};

/**
 * What `status` tells the user about a run no process is working on: the
 * command that resumes it, with the run's value options and --target filters.
 * A run of other columns than `configured` (the config's now: a target was
 * added since it started) is joined only by naming its columns.
 */
function stoppedNote(run: Pick<RunRow, 'targetKey' | 'options' | 'columns'>, configured: readonly string[] | undefined): string {
  const sameColumns = configured === undefined || [...configured].sort().join() === [...(run.columns ?? [])].sort().join();
  const options = sameColumns || Array.isArray(run.options?.target) ? run.options : { ...run.options, target: run.columns };
  return `stopped: no worker holds a lease — run "${joinCommand(run.targetKey, options)}" to resume`;
}

/**
 * An open run's status as `status` shows it. Nothing writes `stopped` to the
 * runs row: several processes on several hosts may share a run, so one of them
 * stopping (--max-duration, SIGTERM, a crash) does not stop the run. Whether
 * any process works on it is in its ranges: a worker holds a lease on the
 * range it rotates, renewed with every batch, and the last one closes the run
 * when its last range is done. No live lease: nobody is working on the run.
 * (Between two ranges of a worker, or just after planning, there can briefly
 * be no lease: a watcher should see it twice before it believes it.)
 */
function deriveRunStatus(storedStatus: string, liveLeases: number): string {
  const open = storedStatus === 'running' || storedStatus === 'stopped';
  if (!open) return storedStatus;
  return liveLeases > 0 ? 'running' : 'stopped';
}

/**
 * Reads a rotation run's progress: the given run, or the latest rotation. Null
 * when there is none; a UsageError when `runId` does not exist or is not a rotation.
 * `configured`: the config's columns ("schema.table.column"), for the command a stopped run's note gives.
 */
export async function readRunStatus(db: Queryable, schema: string, runId?: number, configured?: readonly string[]): Promise<RunStatus | null> {
  const s = quoteIdent(schema);
  const run = (
    await db.query<RunRow>(
      sql(
        `SELECT id::int, kind, status, target_key AS "targetKey", trigger, reason, started_at AS "startedAt", finished_at AS "finishedAt",
                summary->'resumed' AS resumed, now() AS "readAt", options, targets AS columns
           FROM ${s}.runs WHERE ${runId === undefined ? `kind = 'rotate'` : 'id = $1'} ORDER BY id DESC LIMIT 1`,
        runId === undefined ? [] : [runId],
      ),
    )
  ).rows[0];
  if (!run) {
    if (runId !== undefined) throw new UsageError(`there is no run ${runId} — see "pg-rekey history"`);
    return null;
  }
  // Run ids are shared by every kind of run (history lists them together), but
  // only a rotation has ranges, workers and a target key to show: rendered as
  // one, a key add read as "rotation to key <id>, succeeded".
  if (run.kind !== 'rotate') {
    throw new UsageError(
      `run ${run.id} is a ${run.kind} run, not a rotation — "pg-rekey status" shows rotations; see "pg-rekey history" for every run`,
    );
  }
  const ranges = (await db.query(selectRangesSql(schema, run.id))).rows as (RangeStatus & {
    target: string;
    estimatedRows: number;
    skipped: number;
    conflicted: number;
    leaseLive: boolean;
  })[];
  const failures = (
    await db.query<{ target: string; column: string; reason: string; n: number }>(
      sql(
        `SELECT target, column_name AS column, reason, count(*)::int AS n FROM ${s}.failures
          WHERE run_id = $1 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`,
        [run.id],
      ),
    )
  ).rows;
  // The rate covers the latest stretch of work: from the run's start, or from
  // its latest resumption with the rows examined before it taken off. Measured
  // from the first start, the hours a run sat stopped between deploys would
  // count as work and make the ETA grow meaningless.
  const since = run.resumed ? new Date(run.resumed.at) : run.startedAt;
  const elapsed = Math.max(0.001, ((run.finishedAt ?? run.readAt).getTime() - since.getTime()) / 1000);
  const byTarget = new Map<string, TargetStatus>();
  for (const r of ranges) {
    const t =
      byTarget.get(r.target) ??
      byTarget
        .set(r.target, { target: r.target, examined: 0, estimatedTotal: 0, changed: 0, skipped: 0, failed: 0, conflicted: 0, rate: 0, etaSeconds: null, ranges: [], failures: {} })
        .get(r.target)!;
    t.examined += r.examined;
    // A finished range has examined all it had to: its count is its total, not the planner's
    // share of the table (a re-run examines only the rows left, and a succeeded re-run showed
    // "15% of ~5000"). An open range has at least what it examined so far.
    t.estimatedTotal += r.status === 'done' ? r.examined : Math.max(r.estimatedRows, r.examined);
    t.changed += r.changed;
    t.skipped += r.skipped;
    t.failed += r.failed;
    t.conflicted += r.conflicted;
    t.ranges.push({
      ordinal: r.ordinal,
      // A range left by a process that stopped or died is not being rotated, whatever its row says.
      status: r.status === 'running' && !r.leaseLive ? 'stopped' : r.status,
      checkpoint: r.checkpoint,
      examined: r.examined,
      changed: r.changed,
      failed: r.failed,
      toReread: r.toReread,
      // The last holder of a stopped range stays shown, with its lease's expiry (past).
      leaseOwner: r.status === 'running' ? r.leaseOwner : null,
      leaseExpiresAt: r.status === 'running' ? r.leaseExpiresAt : null,
    });
  }
  const workers = ranges
    .filter((r) => r.leaseLive && r.leaseOwner && r.leaseExpiresAt)
    .map((r) => ({ owner: r.leaseOwner!, leaseExpiresAt: r.leaseExpiresAt! }));
  const status = deriveRunStatus(run.status, workers.length);
  for (const t of byTarget.values()) {
    // Nobody works on a stopped run: no rate, so no ETA.
    t.rate = status === 'stopped' ? 0 : (t.examined - (run.resumed?.examined[t.target] ?? 0)) / elapsed;
    // Only a run someone works on has a time left: an aborted run (--on-error
    // abort, --abandon-open-run) keeps its unfinished ranges, but no worker will finish them.
    const open = status === 'running' && t.ranges.some((r) => r.status !== 'done');
    t.etaSeconds = open && t.rate > 0 ? Math.max(0, Math.round((t.estimatedTotal - t.examined) / t.rate)) : null;
  }
  for (const f of failures) {
    const t = byTarget.get(f.target);
    if (t) ((t.failures[f.column] ??= {})[f.reason] = f.n);
  }
  return {
    runId: run.id,
    status,
    storedStatus: run.status,
    note: status === 'stopped' ? stoppedNote(run, configured) : null,
    targetKey: run.targetKey,
    trigger: run.trigger,
    reason: run.reason,
    startedAt: run.startedAt,
    finishedAt: run.finishedAt,
    targets: [...byTarget.values()],
    workers,
  };
}
