/**
 * The statements of the batch loop, for one resolved target. Keys travel as
 * their text forms and are cast back to the key columns' own types in SQL, so
 * keyset order is the server's (collations, uuid, composite keys), never JS's.
 *
 * Secrets: the only value-bearing parameter is the new ciphertext being written
 * to its own column. The compare-and-swap compares the row version read (xmin)
 * and, for re-examined rows, a SHA-256 digest of the value read, so an old
 * ciphertext is never sent back.
 */
import { qualifiedName, quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';

/** A row key: the text form of each key column, in key order. */
export type RowKey = string[];

function tableOf(target: ResolvedTarget): string {
  return qualifiedName({ schema: target.schema, name: target.table });
}

/** `(t."a", t."b")` */
function keyTuple(target: ResolvedTarget): string {
  return `(${target.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ')})`;
}

/** `($n::type, …)` placeholders for one key, appending its values to `values`. */
function keyParams(target: ResolvedTarget, key: RowKey, values: unknown[]): string {
  const parts = target.key.map((k, i) => {
    values.push(key[i]);
    return `$${values.length}::${k.type}`;
  });
  return `(${parts.join(', ')})`;
}

/** Rows still to examine: some column whose key version is not the target's. */
function stillToDo(target: ResolvedTarget, targetVersionParam: string): string {
  return target.columns
    .map((c) => {
      const v = `t.${quoteIdent(c.versionColumn)}`;
      // Written as IS NULL / < / > (not IS DISTINCT FROM) so a btree on the
      // key-version column can serve it when the planner prefers that.
      return `(${v} IS NULL OR ${v} < ${targetVersionParam} OR ${v} > ${targetVersionParam})`;
    })
    .join(' OR ');
}

function selectList(target: ResolvedTarget): string {
  // xmin names the row version read: the compare-and-swap's token (see casUpdateSql).
  const keys = [...target.key.map((k, i) => `t.${quoteIdent(k.name)}::text AS k${i}`), 't.xmin::text AS rv'];
  const cols = target.columns.flatMap((c, i) => [
    `t.${quoteIdent(c.name)} AS c${i}`,
    `t.${quoteIdent(c.versionColumn)} AS v${i}`,
  ]);
  return [...keys, ...cols].join(', ');
}

/**
 * The next batch of a range in key order: rows after `after` (exclusive) up to
 * `upTo` (inclusive) with work left. One statement, so its snapshot lives only
 * as long as the read.
 */
export function selectBatchSql(
  target: ResolvedTarget,
  range: { after: RowKey | null; upTo: RowKey | null },
  targetVersion: number | null,
  limit: number,
): Sql {
  const values: unknown[] = [];
  const where: string[] = [];
  if (range.after) where.push(`${keyTuple(target)} > ${keyParams(target, range.after, values)}`);
  if (range.upTo) where.push(`${keyTuple(target)} <= ${keyParams(target, range.upTo, values)}`);
  if (targetVersion !== null) {
    values.push(targetVersion);
    where.push(`(${stillToDo(target, `$${values.length}::smallint`)})`);
  }
  values.push(limit);
  const order = target.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ');
  return sql(
    `SELECT ${selectList(target)} FROM ${tableOf(target)} AS t
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY ${order} LIMIT $${values.length}`,
    values,
  );
}

/**
 * The value bytes of the next `limit` rows of a range in key order (rows done
 * or not): what sizes a range's first read (see batchBudget.ts). octet_length
 * reads a TOASTed value's length from its header, without fetching the value,
 * so the probe costs a few index tuples whatever the values' size.
 */
export function selectValueBytesSql(target: ResolvedTarget, range: { after: RowKey | null; upTo: RowKey | null }, limit: number): Sql {
  const values: unknown[] = [];
  const where: string[] = [];
  if (range.after) where.push(`${keyTuple(target)} > ${keyParams(target, range.after, values)}`);
  if (range.upTo) where.push(`${keyTuple(target)} <= ${keyParams(target, range.upTo, values)}`);
  values.push(limit);
  const bytes = target.columns.map((c) => `coalesce(pg_catalog.octet_length(t.${quoteIdent(c.name)}), 0)`).join(' + ');
  const order = target.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ');
  return sql(
    `SELECT pg_catalog.count(*)::int AS rows, coalesce(pg_catalog.sum(b), 0)::float8 AS bytes FROM (
       SELECT ${bytes} AS b FROM ${tableOf(target)} AS t
        ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
        ORDER BY ${order} LIMIT $${values.length}) AS s`,
    values,
  );
}

/**
 * Re-reads specific rows (those that lost a compare-and-swap) by key.
 *
 * Each array is unnested by pg_catalog.unnest, named: an unqualified
 * unnest($1::text[]) resolves through the session's search_path, where a
 * unnest(text[]) in any schema (public on the default path) is a more exact
 * match than the built-in unnest(anyarray) and would be run instead; the rows
 * it hid were dropped from the re-read, and the run ended 'succeeded' with
 * them still under the old key. (The multi-array unnest(a, b, …) of the other
 * statements always means the built-in, but cannot be written qualified.)
 */
export function selectRowsByKeySql(target: ResolvedTarget, keys: readonly RowKey[]): Sql {
  const values = target.key.map((_, i) => keys.map((k) => k[i]));
  const unnest = target.key.map((_, i) => `pg_catalog.unnest($${i + 1}::text[])`).join(', ');
  const cols = target.key.map((_, i) => `k${i}`).join(', ');
  const match = target.key.map((k, i) => `t.${quoteIdent(k.name)} = u.k${i}::${k.type}`).join(' AND ');
  const order = target.key.map((k) => `t.${quoteIdent(k.name)}`).join(', ');
  return sql(
    `SELECT ${selectList(target)} FROM ${tableOf(target)} AS t
       JOIN ROWS FROM (${unnest}) AS u(${cols}) ON ${match}
      ORDER BY ${order}`,
    values,
  );
}

/** The writes of a batch, column-wise, as the UPDATE's unnest arrays take them; write i is index i of every array. */
export interface BatchWrites {
  /** Per key column, per write: the row key's text form. */
  keys: string[][];
  /** Per write: the row version read (its xmin, as text). */
  rowVersions: string[];
  /** Per encrypted column, per write: the new value, or null to leave that column alone. */
  values: (string | null)[][];
  /** Per encrypted column, per write: for a re-examined row the SHA-256 of the value read, else null. */
  readDigests: (string | null)[][];
}

/**
 * The compare-and-swap UPDATE of a batch. A column is written only if its row
 * is still the version that was read (same xmin: no transaction has written
 * the row since), or, for a re-examined row, if the column still holds the
 * value read (by digest): a row whose other columns an application keeps
 * updating then still rotates. Under READ COMMITTED the condition is re-checked
 * against a row a concurrent transaction changed, so an application write is
 * never overwritten. Only the encrypted columns and their key-version columns
 * are assigned. RETURNING says, per written row, its index among the writes
 * (`i`, from 0) and which columns were written (`w0`, `w1`, …).
 *
 * The row version is checked first because it is nearly free; hashing every
 * value in SQL and in JavaScript cost about a sixth of the rotation's CPU.
 */
export function casUpdateSql(target: ResolvedTarget, writes: BatchWrites, targetVersion: number): Sql {
  const values: unknown[] = [];
  const arrays: string[] = [];
  const names: string[] = [];
  const push = (name: string, type: string, data: unknown[]) => {
    values.push(data);
    arrays.push(`$${values.length}::${type}[]`);
    names.push(name);
  };
  target.key.forEach((_, i) => push(`k${i}`, 'text', writes.keys[i]!));
  push('rv', 'text', writes.rowVersions);
  target.columns.forEach((_, i) => {
    push(`n${i}`, 'text', writes.values[i]!);
    push(`h${i}`, 'text', writes.readDigests[i]!);
  });
  values.push(targetVersion);
  const version = `$${values.length}::smallint`;
  const unchangedRow = 't.xmin = u.rv::xid';
  const swaps = target.columns.map((c, i) => {
    const unchangedValue = `(u.h${i} IS NOT NULL AND encode(sha256(convert_to(t.${quoteIdent(c.name)}, 'UTF8')), 'hex') = u.h${i})`;
    return `(u.n${i} IS NOT NULL AND (${unchangedRow} OR ${unchangedValue}))`;
  });
  const sets = target.columns.flatMap((c, i) => [
    `${quoteIdent(c.name)} = CASE WHEN ${swaps[i]} THEN u.n${i} ELSE t.${quoteIdent(c.name)} END`,
    `${quoteIdent(c.versionColumn)} = CASE WHEN ${swaps[i]} THEN ${version} ELSE t.${quoteIdent(c.versionColumn)} END`,
  ]);
  const match = target.key.map((k, i) => `t.${quoteIdent(k.name)} = u.k${i}::${k.type}`).join(' AND ');
  const written = target.columns.map(
    (c, i) => `(u.n${i} IS NOT NULL AND t.${quoteIdent(c.name)} = u.n${i} AND t.${quoteIdent(c.versionColumn)} = ${version}) AS w${i}`,
  );
  return sql(
    `UPDATE ${tableOf(target)} AS t SET ${sets.join(', ')}
       FROM unnest(${arrays.join(', ')}) WITH ORDINALITY AS u(${names.join(', ')}, ord)
      WHERE ${match} AND (${swaps.join(' OR ')})
      RETURNING (u.ord - 1)::int AS i, ${written.join(', ')}`,
    values,
  );
}

/** Whether any value of the target still needs work (cheap: stops at the first row). */
export function selectAnyWorkSql(target: ResolvedTarget, targetVersion: number): Sql {
  const pending = target.columns.map((c) => {
    const col = `t.${quoteIdent(c.name)}`;
    const v = `t.${quoteIdent(c.versionColumn)}`;
    return `(${col} IS NOT NULL AND ${col} <> '' AND (${v} IS NULL OR ${v} < $1::smallint OR ${v} > $1::smallint))`;
  });
  return sql(`SELECT EXISTS (SELECT 1 FROM ${tableOf(target)} AS t WHERE ${pending.join(' OR ')}) AS "hasWork"`, [targetVersion]);
}

/**
 * How many values of the target already carry `targetVersion` as their key
 * version (NULL and empty values aside): what a dry run reports as already
 * under the target key. Its scan reads only rows with work left, so a row whose
 * every value is done is never read there; counted over the whole table here.
 */
export function countAlreadyDoneSql(target: ResolvedTarget, targetVersion: number): Sql {
  const perColumn = target.columns.map((c) => {
    const col = `t.${quoteIdent(c.name)}`;
    return `count(*) FILTER (WHERE ${col} IS NOT NULL AND ${col} <> '' AND t.${quoteIdent(c.versionColumn)} = $1::smallint)`;
  });
  return sql(`SELECT (${perColumn.join(' + ')})::float8 AS "alreadyDone" FROM ${tableOf(target)} AS t`, [targetVersion]);
}
