import pg from 'pg';
import { selectRowEstimateSql } from '../db/catalog.js';
import { qualifiedName, quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import { sqlstateOf } from '../db/sqlstate.js';
import { withTransaction, type Queryable } from '../db/withTransaction.js';
import { RunConflictError, UsageError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { tryMigrateDownLockSharedSql } from '../schema/migrationLock.js';
import type { Actor } from '../schema/runsSql.js';
import type { RowKey } from './batchSql.js';
import { HOLDS_LIVE_LEASE, runTotals } from './rangesSql.js';

/** The rotation run a process works on, new or joined. */
export interface RotationRun {
  id: number;
  targetKeyId: string;
  /** True when this process joined a run another process (or an earlier attempt) started. */
  joined: boolean;
}

/** What a new rotation run records. */
export interface NewRun {
  targetKeyId: string;
  sourceKeyIds: string[];
  /** "schema.table.column" of every column in the run. */
  columns: string[];
  trigger: 'manual' | 'scheduled' | 'emergency';
  reason: string | undefined;
  actor: Actor;
  options: Record<string, unknown>;
  /** Abort a conflicting open run instead of refusing (emergency rollback). */
  abandonOpenRun?: boolean;
}

// Ranges are what several workers or hosts share; about this many rows each
// keeps a takeover cheap and leaves enough ranges for a few hosts.
const ROWS_PER_RANGE = 10_000;
const MAX_RANGES = 256;
// A small table still gets a few ranges (of at least a default batch each), or
// one worker would rotate it alone while the others had nothing to claim: a
// 10,000-row table took 0.9 s as one range and 0.6–0.7 s as eight, measured.
const MIN_RANGES = 8;
const MIN_ROWS_PER_RANGE = 1_000;
const SAMPLE_ROWS = 20_000;

/**
 * A SHARE lock on the key registry, held until the run is committed. Every
 * change to the registry (register, promote, retire) takes SHARE ROW EXCLUSIVE,
 * which conflicts: a retirement of the target key either commits first (and
 * the new run is refused by the state check that follows) or waits until the
 * run is committed — and then its gate finds the run open and refuses. Without
 * it, `keys retire K` and a starting `rotate --to K` could both succeed,
 * leaving rows under a retired key.
 */
function lockRegistrySql(schema: string): Sql {
  return sql(`LOCK TABLE ${quoteIdent(schema)}.keys IN SHARE MODE`);
}

function selectKeyStateSql(schema: string, keyId: string): Sql {
  return sql(`SELECT state FROM ${quoteIdent(schema)}.keys WHERE key_id = $1`, [keyId]);
}

function selectOpenRotationSql(schema: string): Sql {
  return sql(
    `SELECT id::int, target_key AS "targetKey", targets, options FROM ${quoteIdent(schema)}.runs
      WHERE kind = 'rotate' AND status IN ('running', 'stopped') FOR UPDATE`,
  );
}

/** Marks an open run aborted as abandoned, with the totals its ranges reached (see runTotals). */
function abandonRunSql(schema: string, runId: number, reason: string | undefined): Sql {
  const totals = runTotals(schema, '$1');
  return sql(
    `${totals.cte}
     UPDATE ${quoteIdent(schema)}.runs AS r
        SET status = 'aborted', finished_at = now(), ${totals.set},
            summary = r.summary || pg_catalog.jsonb_build_object('abandoned', true, 'abandonReason', $2::text)
       FROM totals
      WHERE r.id = $1 AND r.status IN ('running', 'stopped')`,
    [runId, reason ?? null],
  );
}

/**
 * Notes in the run's summary when, and from how many rows examined per target,
 * a process resumes a run nobody was working on (no live lease): `status`
 * measures the rate from there, so time the run spent stopped does not dilute
 * it. A process joining a run others are working on changes nothing.
 */
function markResumedSql(schema: string, runId: number): Sql {
  const s = quoteIdent(schema);
  return sql(
    `UPDATE ${s}.runs AS r
        SET summary = r.summary || pg_catalog.jsonb_build_object('resumed', pg_catalog.jsonb_build_object(
              'at', now(),
              'examined', (SELECT coalesce(pg_catalog.jsonb_object_agg(target, examined), '{}'::jsonb)
                             FROM (SELECT target, sum(rows_examined) AS examined FROM ${s}.ranges WHERE run_id = $1 GROUP BY target) AS t)))
      WHERE r.id = $1
        AND NOT EXISTS (SELECT 1 FROM ${s}.ranges WHERE run_id = $1 AND ${HOLDS_LIVE_LEASE})`,
    [runId],
  );
}

/**
 * Records a joining process's --reason (and --emergency) on the open run it
 * joins: the run's reason stays the starter's, with the joiner's added after it
 * (`; joined: …`, or `; emergency: …`), unless the run records it already (a
 * host resuming with the command it started with). An emergency rotation that
 * joins a scheduled or manual run of the same key makes it an emergency run.
 * Joined silently, the audit trail would show no emergency rotation at all, and
 * lost the reason an operator typed. While the run is open its row may still
 * change; it is hashed into the chain when it finishes.
 */
function recordJoinSql(schema: string, runId: number, join: { emergency: boolean; reason: string | undefined }): Sql {
  return sql(
    `UPDATE ${quoteIdent(schema)}.runs
        SET trigger = CASE WHEN $3 THEN 'emergency' ELSE trigger END,
            reason = CASE WHEN $2::text IS NULL THEN reason
                          WHEN reason IS NULL THEN $2::text
                          -- Already recorded, as the starter's reason or a joiner's ("; "-separated).
                          WHEN EXISTS (SELECT 1 FROM pg_catalog.unnest(ARRAY['', 'joined: ', 'emergency: ']) AS p(label)
                                        WHERE pg_catalog.strpos('; ' || reason || '; ', '; ' || p.label || $2::text || '; ') > 0) THEN reason
                          ELSE reason || CASE WHEN $3 THEN '; emergency: ' ELSE '; joined: ' END || $2::text END
      WHERE id = $1`,
    [runId, join.reason ?? null, join.emergency],
  );
}

function insertRotationRunSql(schema: string, run: NewRun): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.runs
       (kind, trigger, reason, actor_os_user, actor_host, source_keys, target_key, targets, options)
     VALUES ('rotate', $1, $2, $3, $4, $5, $6, $7, $8) RETURNING id::int`,
    [run.trigger, run.reason ?? null, run.actor.osUser, run.actor.host, run.sourceKeyIds, run.targetKeyId, run.columns, JSON.stringify(run.options)],
  );
}

/**
 * The upper key of each of `tiles` equal slices of a block sample of the table.
 * A sample keeps planning cheap on a big table; uneven slices only cost balance.
 */
function selectBoundariesSql(target: ResolvedTarget, samplePercent: number, tiles: number): Sql {
  const cols = target.key.map((k) => `t.${quoteIdent(k.name)}`);
  const texts = target.key.map((k, i) => `t.${quoteIdent(k.name)}::text AS k${i}`);
  const typed = target.key.map((k, i) => `t.${quoteIdent(k.name)} AS o${i}`);
  return sql(
    `SELECT DISTINCT ON (tile) ${target.key.map((_, i) => `k${i}`).join(', ')}
       FROM (SELECT ${[...texts, ...typed].join(', ')}, ntile($2) OVER (ORDER BY ${cols.join(', ')}) AS tile
               FROM ${qualifiedName({ schema: target.schema, name: target.table })} AS t
               TABLESAMPLE SYSTEM ($1)) AS s
      ORDER BY tile, ${target.key.map((_, i) => `o${i} DESC`).join(', ')}`,
    [samplePercent, tiles],
  );
}

function insertRangeSql(schema: string, runId: number, target: string, ordinal: number, lower: RowKey | null, upper: RowKey | null, estimate: number): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.ranges (run_id, target, ordinal, lower_bound, upper_bound, checkpoint, estimated_rows)
     VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $4::jsonb, $6)`,
    [runId, target, ordinal, lower && JSON.stringify(lower), upper && JSON.stringify(upper), Math.round(estimate)],
  );
}

/** Splits a target's key space into ranges from its estimated size and a sample of its keys. */
async function planRanges(client: Queryable, schema: string, runId: number, target: ResolvedTarget): Promise<number> {
  const est = (await client.query<{ tuples: number; pages: number }>(selectRowEstimateSql({ schema: target.schema, name: target.table }))).rows[0];
  // reltuples is -1 on a table never analyzed; then assume a modest size.
  const estimate = est && est.tuples >= 0 ? est.tuples : Math.max(0, (est?.pages ?? 0) * 50);
  const fewest = Math.min(MIN_RANGES, Math.ceil(estimate / MIN_ROWS_PER_RANGE));
  const tiles = Math.min(MAX_RANGES, Math.max(1, fewest, Math.ceil(estimate / ROWS_PER_RANGE)));
  let uppers: RowKey[] = [];
  if (tiles > 1) {
    const percent = Math.min(100, (SAMPLE_ROWS / Math.max(estimate, 1)) * 100);
    const rows = (await client.query<Record<string, string>>(selectBoundariesSql(target, percent, tiles))).rows;
    uppers = rows.slice(0, -1).map((r) => target.key.map((_, i) => r[`k${i}`]!));
  }
  let lower: RowKey | null = null;
  const bounds = [...uppers, null];
  for (const [ordinal, upper] of bounds.entries()) {
    await client.query(insertRangeSql(schema, runId, target.name, ordinal, lower, upper, estimate / bounds.length));
    lower = upper;
  }
  return bounds.length;
}

/**
 * The options that decide what happens to a value, with their defaults (a run
 * recorded without one used the default). Every process of a run must share
 * them: a run recorded without --encrypt-legacy whose second host encrypted
 * plaintext, or one host aborting a run the others continue past bad values,
 * would leave an audit record that says something else than what was done.
 * Tuning options (--batch-size, --workers…) may differ per process.
 */
const VALUE_POLICY = [
  { option: 'encryptLegacy', describe: (v: unknown) => (v === true ? 'with --encrypt-legacy' : 'without --encrypt-legacy'), flag: (v: unknown) => (v === true ? ['--encrypt-legacy'] : []), fallback: false },
  { option: 'onError', describe: (v: unknown) => `with --on-error ${String(v)}`, flag: (v: unknown) => (v === 'abort' ? ['--on-error abort'] : []), fallback: 'continue' },
] as const;

/** A --target filter as a shell word: single-quoted unless it is plain (a quoted table name, say). */
function shellWord(text: string): string {
  return /^[A-Za-z0-9_.:@%+=\/-]+$/.test(text) ? text : `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command that joins or resumes a run to `targetKey` with these options
 * (a run's recorded ones): with its value options and the --target filters it
 * was started with (`target`), or the join would be refused — a run of some
 * columns cannot be joined by a rotate of every column (RunConflictError).
 */
export function joinCommand(targetKey: string | null | undefined, options: Record<string, unknown> | null | undefined): string {
  const recorded = options ?? {};
  const flags = VALUE_POLICY.flatMap((p) => p.flag(recorded[p.option] ?? p.fallback));
  const filters = Array.isArray(recorded.target) ? recorded.target.map((f) => `--target ${shellWord(String(f))}`) : [];
  return ['pg-rekey rotate', ...(targetKey ? [`--to ${targetKey}`] : []), ...filters, ...flags].join(' ');
}

/** Refuses to join an open run whose value policy (VALUE_POLICY) differs from this process's, naming each difference. */
function assertSamePolicy(open: { id: number; targetKey: string; options: Record<string, unknown> | null }, mine: Record<string, unknown>): void {
  const theirs = open.options ?? {};
  const differences = VALUE_POLICY.filter((p) => (theirs[p.option] ?? p.fallback) !== (mine[p.option] ?? p.fallback)).map(
    (p) => `it was started ${p.describe(theirs[p.option] ?? p.fallback)}, this rotate runs ${p.describe(mine[p.option] ?? p.fallback)}`,
  );
  if (differences.length === 0) return;
  const join = joinCommand(open.targetKey, theirs);
  throw new RunConflictError(
    `rotation run ${open.id} is unfinished and ${differences.join('; ')} — every process of a run must treat values alike. ` +
      `Join it with "${join}", or let it finish and then run your rotate again`,
  );
}

/**
 * Abandons the unfinished rotation, if any, and starts none: for a run whose
 * only target table is gone (dropped, and removed from the config), which no
 * rotate could otherwise finish or replace — it would keep `keys retire` and
 * `migrate down` refused for good. Returns the abandoned run's id, or null.
 */
export async function abandonOpenRun(pool: pg.Pool, schema: string, reason: string | undefined): Promise<number | null> {
  return withTransaction(pool, async (client) => {
    const open = (await client.query<{ id: number }>(selectOpenRotationSql(schema))).rows[0];
    // Waits for the open run's batches in flight, as in startOrJoinRun.
    if (open) await client.query(abandonRunSql(schema, open.id, reason));
    return open?.id ?? null;
  });
}

/**
 * Joins the unfinished rotation if there is one (refusing one to another key or
 * other columns, RunConflictError), or starts a run and plans its ranges in one
 * transaction. Concurrent starters race on a unique index; the loser joins.
 */
export async function startOrJoinRun(
  pool: pg.Pool,
  schema: string,
  run: NewRun,
  targets: readonly ResolvedTarget[],
): Promise<RotationRun> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await withTransaction(pool, async (client) => {
        await client.query(lockRegistrySql(schema));
        const open = (
          await client.query<{ id: number; targetKey: string; targets: string[]; options: Record<string, unknown> | null }>(selectOpenRotationSql(schema))
        ).rows[0];
        if (open) {
          const sameColumns = [...open.targets].sort().join() === [...run.columns].sort().join();
          const conflicts = open.targetKey !== run.targetKeyId || !sameColumns;
          if (conflicts && run.abandonOpenRun) {
            // Waits for the open run's batches in flight (they hold a share lock on
            // its row); after this no batch of it can commit (lockRunSql).
            await client.query(abandonRunSql(schema, open.id, run.reason));
          } else if (conflicts) {
            // Of other columns than this rotate's — started with --target, or before a target was
            // added to the config — it is joined only by naming its columns: its recorded filters, else the columns themselves.
            const join = sameColumns || Array.isArray(open.options?.target) ? open.options : { ...open.options, target: open.targets };
            throw new RunConflictError(
              `rotation run ${open.id} to key ${open.targetKey} (${open.targets.join(', ')}) is unfinished — ` +
                `finish it first with "${joinCommand(open.targetKey, join)}", ` +
                `or abandon it with --abandon-open-run (an emergency rollback)`,
            );
          } else {
            assertSamePolicy(open, run.options);
            if (run.trigger === 'emergency' || run.reason !== undefined) {
              await client.query(recordJoinSql(schema, open.id, { emergency: run.trigger === 'emergency', reason: run.reason }));
            }
            await client.query(markResumedSql(schema, open.id));
            return { id: open.id, targetKeyId: open.targetKey, joined: true };
          }
        }
        // migrate down refuses to run while a rotation is open, but a run started after
        // its check would have its key-version columns removed under it: none starts
        // while a migrate down holds its lock (ours is held until this commits).
        if (!(await client.query<{ locked: boolean }>(tryMigrateDownLockSharedSql())).rows[0]!.locked) {
          throw new RunConflictError(
            'a pg-rekey migrate down is running on this database (from this or another host) — no rotation was started; ' +
              'run "pg-rekey rotate" again once it has finished (and "pg-rekey migrate up" if it removed the target\'s columns)',
          );
        }
        const key = (await client.query<{ state: string }>(selectKeyStateSql(schema, run.targetKeyId))).rows[0];
        if (key?.state !== 'active') {
          throw new UsageError(`key ${run.targetKeyId} is ${key ? 'retired' : 'no longer registered'} — no rotation was started; rotate to an active key`);
        }
        const id = (await client.query<{ id: number }>(insertRotationRunSql(schema, run))).rows[0]!.id;
        for (const target of targets) await planRanges(client, schema, id, target);
        return { id, targetKeyId: run.targetKeyId, joined: false };
      });
    } catch (err) {
      // Another process created the run between our look and our insert: join it.
      if (sqlstateOf(err) === '23505' && attempt < 3) continue;
      throw err;
    }
  }
}
