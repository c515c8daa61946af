import { quoteIdent } from '../db/quote.js';
import { sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { UsageError } from '../errors.js';
import { selectRangesSql } from './rangesSql.js';

/** One range as `status` shows it. */
export interface RangeStatus {
  ordinal: number;
  status: 'pending' | 'running' | 'done';
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
  /** Rows per second since the run started (examined). */
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
  status: string;
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
type RunRow = Omit<RunStatus, 'runId' | 'targets' | 'workers'> & { id: number };

/** Reads a rotation run's progress: the given run, or the latest rotation. Null when there is none. */
export async function readRunStatus(db: Queryable, schema: string, runId?: number): Promise<RunStatus | null> {
  const s = quoteIdent(schema);
  const run = (
    await db.query<RunRow>(
      sql(
        `SELECT id::int, status, target_key AS "targetKey", trigger, reason, started_at AS "startedAt", finished_at AS "finishedAt"
           FROM ${s}.runs WHERE ${runId === undefined ? `kind = 'rotate'` : 'id = $1'} ORDER BY id DESC LIMIT 1`,
        runId === undefined ? [] : [runId],
      ),
    )
  ).rows[0];
  if (!run) {
    if (runId !== undefined) throw new UsageError(`there is no run ${runId} — see "pg-rekey history"`);
    return null;
  }
  const ranges = (await db.query(selectRangesSql(schema, run.id))).rows as (RangeStatus & {
    target: string;
    estimatedRows: number;
    skipped: number;
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
  const elapsed = Math.max(0.001, ((run.finishedAt ?? new Date()).getTime() - run.startedAt.getTime()) / 1000);
  const byTarget = new Map<string, TargetStatus>();
  for (const r of ranges) {
    const t =
      byTarget.get(r.target) ??
      byTarget
        .set(r.target, { target: r.target, examined: 0, estimatedTotal: 0, changed: 0, skipped: 0, failed: 0, rate: 0, etaSeconds: null, ranges: [], failures: {} })
        .get(r.target)!;
    t.examined += r.examined;
    t.estimatedTotal += r.estimatedRows;
    t.changed += r.changed;
    t.skipped += r.skipped;
    t.failed += r.failed;
    t.ranges.push({
      ordinal: r.ordinal,
      status: r.status,
      checkpoint: r.checkpoint,
      examined: r.examined,
      changed: r.changed,
      failed: r.failed,
      toReread: r.toReread,
      leaseOwner: r.status === 'running' ? r.leaseOwner : null,
      leaseExpiresAt: r.status === 'running' ? r.leaseExpiresAt : null,
    });
  }
  for (const t of byTarget.values()) {
    t.rate = t.examined / elapsed;
    const open = t.ranges.some((r) => r.status !== 'done');
    t.etaSeconds = open && t.rate > 0 ? Math.max(0, Math.round((t.estimatedTotal - t.examined) / t.rate)) : null;
  }
  for (const f of failures) {
    const t = byTarget.get(f.target);
    if (t) ((t.failures[f.column] ??= {})[f.reason] = f.n);
  }
  const now = Date.now();
  const workers = ranges
    .filter((r) => r.status === 'running' && r.leaseOwner && r.leaseExpiresAt && r.leaseExpiresAt.getTime() > now)
    .map((r) => ({ owner: r.leaseOwner!, leaseExpiresAt: r.leaseExpiresAt! }));
  return { runId: run.id, status: run.status, targetKey: run.targetKey, trigger: run.trigger, reason: run.reason, startedAt: run.startedAt, finishedAt: run.finishedAt, targets: [...byTarget.values()], workers };
}
