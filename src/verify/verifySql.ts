/**
 * The statements verify adds to the rotator's (src/rotation/batchSql.ts, whose
 * keyset reads it reuses): sample window starts, the key-version repair, and the
 * verify run row. Keys travel as text and are cast back to the key columns'
 * types in SQL, so ordering is the server's. No value is ever a parameter: the
 * repair compares a SHA-256 digest of the value read.
 */
import { qualifiedName, quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import type { Actor } from '../schema/runsSql.js';
import type { RowKey } from '../rotation/batchSql.js';

function tableOf(target: ResolvedTarget): string {
  return qualifiedName({ schema: target.schema, name: target.table });
}


/** An exact count, used only when the table was never analysed. */
export function selectCountSql(target: ResolvedTarget): Sql {
  return sql(`SELECT count(*)::float8 AS estimate FROM ${tableOf(target)}`);
}

/**
 * Up to `windows` random row keys, in key order, as starts of sample windows.
 * TABLESAMPLE SYSTEM reads only `percent` of the table's pages, so picking the
 * starts costs a fraction of a scan. REPEATABLE(seed) picks the same pages
 * again, and the starts among their rows are ordered by a hash of key and seed
 * (not random(), which the seed does not govern): the same seed checks the
 * same rows while the table does not change.
 */
export function selectWindowStartsSql(target: ResolvedTarget, percent: number, seed: number, windows: number): Sql {
  const keys = target.key.map((k, i) => `t.${quoteIdent(k.name)} AS s${i}`).join(', ');
  const texts = target.key.map((_, i) => `s.s${i}::text AS k${i}`).join(', ');
  const inner = target.key.map((_, i) => `s.s${i}`).join(', ');
  const keyRow = `ROW(${target.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ')})::text`;
  return sql(
    `SELECT ${texts} FROM (
       SELECT ${keys} FROM ${tableOf(target)} AS t TABLESAMPLE SYSTEM ($1::float4) REPEATABLE ($2::float8)
        ORDER BY md5(${keyRow} || $2::text) LIMIT $3
     ) AS s ORDER BY ${inner}`,
    [percent, seed, windows],
  );
}

/**
 * `(a) > (b)` for two row keys, compared as the key columns' own types and
 * collations (never in JavaScript): with no column in the expression, a
 * parameter cast to text would compare in the database's default collation,
 * not in the key column's order that the keyset reads follow.
 */
export function compareKeysSql(target: ResolvedTarget, a: RowKey, b: RowKey): Sql {
  const n = target.key.length;
  const typed = (k: ResolvedTarget['key'][number], param: number) => `$${param}::${k.type}${k.collation ? ` COLLATE ${k.collation}` : ''}`;
  const left = target.key.map((k, i) => typed(k, i + 1)).join(', ');
  const right = target.key.map((k, i) => typed(k, n + i + 1)).join(', ');
  return sql(`SELECT ROW(${left}) > ROW(${right}) AS after`, [...a, ...b]);
}

/** One key-version repair: the row, the version to set, and the digest of the value read. */
export interface VersionFix {
  key: RowKey;
  version: number;
  readDigest: string;
}

/**
 * Sets column `columnIndex`'s key-version column of each row, only where the
 * value still is the one read (by digest) — compare-and-swap: under READ
 * COMMITTED a row changed concurrently is re-checked and left alone. The value
 * itself is not assigned, so no ciphertext changes; the transaction marks
 * itself as pg-rekey's (keyVersionWriter.ts) or the guard trigger would reset
 * the hint it sets. Returns the keys of rows set.
 */
export function fixVersionsSql(target: ResolvedTarget, columnIndex: number, fixes: readonly VersionFix[]): Sql {
  const column = target.columns[columnIndex]!;
  const values: unknown[] = target.key.map((_, i) => fixes.map((f) => f.key[i]));
  values.push(fixes.map((f) => f.version), fixes.map((f) => f.readDigest));
  const n = target.key.length;
  const arrays = [...target.key.map((_, i) => `$${i + 1}::text[]`), `$${n + 1}::smallint[]`, `$${n + 2}::text[]`];
  const names = [...target.key.map((_, i) => `k${i}`), 'v', 'h'];
  const match = target.key.map((k, i) => `t.${quoteIdent(k.name)} = u.k${i}::${k.type}`).join(' AND ');
  const c = `t.${quoteIdent(column.name)}`;
  const v = quoteIdent(column.versionColumn);
  return sql(
    `UPDATE ${tableOf(target)} AS t SET ${v} = u.v
       FROM unnest(${arrays.join(', ')}) AS u(${names.join(', ')})
      WHERE ${match}
        AND ${c} IS NOT NULL AND encode(sha256(convert_to(${c}, 'UTF8')), 'hex') = u.h
        AND t.${v} IS DISTINCT FROM u.v
      RETURNING ${target.key.map((_, i) => `u.k${i}`).join(', ')}`,
    values,
  );
}

/** A finished verify, as the runs table records it. */
export interface VerifyRunRecord {
  status: 'succeeded' | 'failed';
  /** The server's clock (clock_timestamp()) when the scan began, as text: no precision lost. */
  startedAt: string;
  actor: Actor;
  /** Keys that were allowed to decrypt (configured, not retired, not withheld). */
  sourceKeys: string[];
  /** "schema.table.column" of every column verified. */
  targets: string[];
  /** Queried by the retire gate: {"without": [...], "sampled": false, "partial": false}. */
  options: Record<string, unknown>;
  examined: number;
  fixed: number;
  skipped: number;
  failed: number;
  summary: Record<string, unknown>;
}

/**
 * Inserts a verify run already finished: verify writes its run once, at the
 * end (both times from the server clock, so they never disagree), so a killed
 * verify leaves no "running" row behind and a finished row is never updated
 * (the audit trail's runs are append-only).
 */
export function insertVerifyRunSql(schema: string, run: VerifyRunRecord): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.runs
       (kind, trigger, actor_os_user, actor_host, source_keys, targets, options, started_at, finished_at, status,
        rows_examined, rows_changed, rows_skipped, rows_failed, summary)
     VALUES ('verify', 'manual', $1, $2, $3, $4, $5, $6::timestamptz, now(),
             $7, $8, $9, $10, $11, $12)
     RETURNING id::int AS id`,
    [
      run.actor.osUser,
      run.actor.host,
      run.sourceKeys,
      run.targets,
      JSON.stringify(run.options),
      run.startedAt,
      run.status,
      run.examined,
      run.fixed,
      run.skipped,
      run.failed,
      JSON.stringify(run.summary),
    ],
  );
}
