import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { HOLDS_LIVE_LEASE } from '../rotation/rangesSql.js';

/** One run as the Rotation History table shows it (the manual procedure's audit trail). */
export interface HistoryEntry {
  id: number;
  /** Position in the hash chain; null while the run is open (running or stopped). */
  chainSeq: number | null;
  kind: 'rotate' | 'verify' | 'promote' | 'retire' | 'add';
  trigger: 'manual' | 'scheduled' | 'emergency';
  reason: string | null;
  sourceKeys: string[];
  targetKey: string | null;
  targets: string[];
  options: Record<string, unknown>;
  startedAt: Date;
  finishedAt: Date | null;
  /** finished_at − started_at (or until now for an open run), in milliseconds. */
  durationMs: number;
  /**
   * How the run stands. An open rotation on which no worker holds a live lease
   * is `stopped`, as `pg-rekey status` shows it: its row stays `running` until
   * the run ends (see storedStatus), however long nobody works on it.
   */
  status: 'running' | 'succeeded' | 'failed' | 'stopped' | 'aborted';
  /** The status as the runs row records it. */
  storedStatus: 'running' | 'succeeded' | 'failed' | 'stopped' | 'aborted';
  rowsExamined: number;
  rowsChanged: number;
  rowsSkipped: number;
  rowsFailed: number;
  /** Rotations: rows left under their old key because the application kept rewriting them ("conflicts left"). */
  rowsConflicted: number;
  actor: { dbUser: string; osUser: string | null; host: string | null };
}

/** Which runs `listHistory` returns. */
export interface HistoryQuery {
  /** Only runs started at or after this instant. */
  since?: Date | undefined;
  /** Only the newest N runs (still listed oldest first). */
  limit?: number | undefined;
}

/** A row as selected: the entry with its actor still in three columns. */
type HistoryRow = Omit<HistoryEntry, 'actor'> & { dbUser: string; osUser: string | null; host: string | null };

// Newest first so LIMIT keeps the latest runs; the caller reverses to read
// chronologically, like the procedure's table. Counters as float8 because
// bigint arrives as a string from pg and these fit a double exactly. A run
// writes its counters when it ends; an open one's are summed from its ranges.
function selectHistorySql(schema: string, query: HistoryQuery): Sql {
  const s = quoteIdent(schema);
  return sql(
    `SELECT r.id::float8 AS id, r.chain_seq::float8 AS "chainSeq", r.kind, r.trigger, r.reason,
            r.source_keys AS "sourceKeys", r.target_key AS "targetKey", r.targets, r.options,
            r.started_at AS "startedAt", r.finished_at AS "finishedAt",
            extract(epoch FROM coalesce(r.finished_at, now()) - r.started_at)::float8 * 1000 AS "durationMs",
            CASE WHEN r.kind = 'rotate' AND r.status IN ('running', 'stopped')
                      AND NOT EXISTS (SELECT 1 FROM ${s}.ranges AS g WHERE g.run_id = r.id AND ${HOLDS_LIVE_LEASE})
                 THEN 'stopped' ELSE r.status END AS status,
            r.status AS "storedStatus", coalesce(live.examined, r.rows_examined)::float8 AS "rowsExamined",
            coalesce(live.changed, r.rows_changed)::float8 AS "rowsChanged",
            coalesce(live.skipped, r.rows_skipped)::float8 AS "rowsSkipped",
            coalesce(live.failed, r.rows_failed)::float8 AS "rowsFailed",
            coalesce(live.conflicted, (r.summary->>'conflicted')::float8, 0)::float8 AS "rowsConflicted",
            r.actor_db_user AS "dbUser", r.actor_os_user AS "osUser", r.actor_host AS host
       FROM ${s}.runs AS r
       LEFT JOIN LATERAL (
         SELECT sum(g.rows_examined) AS examined, sum(g.rows_changed) AS changed,
                sum(g.rows_skipped) AS skipped, sum(g.rows_failed) AS failed, sum(g.rows_conflicted) AS conflicted
           FROM ${s}.ranges AS g WHERE g.run_id = r.id
       ) AS live ON r.finished_at IS NULL
      WHERE $1::timestamptz IS NULL OR r.started_at >= $1::timestamptz
      ORDER BY r.started_at DESC, r.id DESC
      LIMIT $2`,
    [query.since ?? null, query.limit ?? null],
  );
}

/** The runs, oldest first, filtered by `query` (read-only). */
export async function listHistory(db: Queryable, schema: string, query: HistoryQuery = {}): Promise<HistoryEntry[]> {
  const rows = (await db.query<HistoryRow>(selectHistorySql(schema, query))).rows;
  return rows.reverse().map(({ dbUser, osUser, host, ...run }) => ({ ...run, actor: { dbUser, osUser, host } }));
}

/** "old1, old2 → new", the Rotation History's key column; a verify rehearsal names the withheld keys. */
export function describeKeys(entry: HistoryEntry): string {
  const source = entry.sourceKeys.join(', ');
  const target = entry.targetKey ?? '';
  let keys = source && target ? `${source} → ${target}` : source || target;
  const without = entry.options['without'];
  if (entry.kind === 'verify' && Array.isArray(without) && without.length > 0) {
    keys = `${keys}${keys ? ' ' : ''}(without ${without.join(', ')})`;
  }
  return keys || '-';
}

/** "1h 02m", "3m 10s", "4.2s": short enough for a table column. */
export function formatDuration(ms: number): string {
  if (ms < 10_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  const m = Math.round(s / 60);
  if (m < 48 * 60) return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(m / 1440)}d ${Math.floor((m % 1440) / 60)}h`;
}

/**
 * The Records column: values changed of rows examined for a rotation (plus
 * failures), rows checked for a verify, '-' for lifecycle actions that touch no row.
 */
export function describeRecords(entry: HistoryEntry): string {
  if (entry.kind !== 'rotate' && entry.kind !== 'verify') return '-';
  const failed = entry.rowsFailed > 0 ? `, ${entry.rowsFailed} failed` : '';
  if (entry.kind === 'verify') {
    const fixed = entry.rowsChanged > 0 ? `, ${entry.rowsChanged} hints fixed` : '';
    return `${entry.rowsExamined} checked${fixed}${failed}`;
  }
  // A finished run that left rows to the next one is not done with them, though it "succeeded".
  const conflicts = entry.rowsConflicted > 0 ? `, ${entry.rowsConflicted} conflicts left` : '';
  return `${entry.rowsChanged}/${entry.rowsExamined}${failed}${conflicts}`;
}

/** "os_user@host (db: user)": who ran it, as recorded. */
export function describeActor(entry: HistoryEntry): string {
  const { dbUser, osUser, host } = entry.actor;
  const who = osUser && host ? `${osUser}@${host}` : (osUser ?? host ?? '');
  return who ? `${who} (db: ${dbUser})` : `db: ${dbUser}`;
}
