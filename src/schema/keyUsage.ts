import { assertRelationExists, assertWholeTableVisible, selectKeyVersionColumnsSql, type KeyVersionColumnInfo } from '../db/catalog.js';
import { qualifiedName, quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { TargetError } from '../errors.js';
import { sqlstateOf } from '../db/sqlstate.js';
import type { TargetConfig } from '../config/loadConfig.js';
import { targetName } from '../config/loadConfig.js';
import { asTargetChanged } from '../rotation/targetChanged.js';
import { assertKeyVersionGuards } from './keyVersionGuards.js';

/** The key-version column that indexes the work for encrypted column `column` (DESIGN §3). */
export function keyVersionColumn(column: string): string {
  return `${column}_key_version`;
}

/** How the values of one target column are spread over keys. */
export interface ColumnUsage {
  target: string;
  column: string;
  /** Rows per registered key id (by key-version column). */
  byKey: Record<string, number>;
  /** Rows holding a value whose key version is unknown (NULL): still to examine. */
  unknown: number;
}

function selectColumnUsageSql(schema: string, target: TargetConfig, column: string): Sql {
  const c = quoteIdent(column);
  return sql(
    `SELECT k.key_id AS "keyId", count(*)::bigint AS rows
       FROM ${qualifiedName({ schema: target.schema, name: target.table })} AS t
       LEFT JOIN ${quoteIdent(schema)}.keys AS k ON k.version = t.${quoteIdent(keyVersionColumn(column))}
      WHERE t.${c} IS NOT NULL AND t.${c} <> ''
      GROUP BY k.key_id`,
  );
}

/**
 * Counts, per target column, the rows under each key and the rows whose key
 * version is unknown. Needs the target migrations applied; says so otherwise.
 * Counts that cannot see every row (RLS filtering this role, inheritance
 * children) or rest on unguarded hints (a guard trigger missing or disabled)
 * are refused with a TargetError rather than returned: keys retire decides on them.
 */
export async function keyUsage(db: Queryable, schema: string, targets: readonly TargetConfig[]): Promise<ColumnUsage[]> {
  const usage: ColumnUsage[] = [];
  for (const target of targets) {
    const table = await assertRelationExists(db, { schema: target.schema, name: target.table });
    await assertWholeTableVisible(db, table);
    for (const column of target.columns) {
      let rows: { keyId: string | null; rows: string }[];
      try {
        rows = (await db.query<{ keyId: string | null; rows: string }>(selectColumnUsageSql(schema, target, column))).rows;
      } catch (err) {
        // The table exists (asserted above): an undefined column is its missing key-version column.
        if (sqlstateOf(err) === '42703') {
          throw new TargetError(
            `${targetName(target)}.${column} has no key-version column — run "pg-rekey target add" for it, then "pg-rekey migrate up"`,
          );
        }
        // Dropped or renamed since it was asserted (the count waited for its lock): named, not an internal error.
        throw asTargetChanged(err, { name: targetName(target) }, 'key-count');
      }
      const entry: ColumnUsage = { target: targetName(target), column, byKey: {}, unknown: 0 };
      for (const r of rows) {
        if (r.keyId === null) entry.unknown += Number(r.rows);
        else entry.byKey[r.keyId] = Number(r.rows);
      }
      usage.push(entry);
    }
    // Counts by hint are only as good as the triggers that reset stale hints.
    await assertKeyVersionGuards(db, table, target.columns);
  }
  return usage;
}

/**
 * Refuses (TargetError) when the database has key-version columns that are not
 * targets of `targets`: values in those columns may still need a key, and a
 * decision about the key made from this config would not see them (run with a
 * config that lacks a table, `keys retire` would count, and its rehearsal would
 * read, only the others).
 */
export async function assertEveryKeyVersionColumnConfigured(db: Queryable, schema: string, targets: readonly TargetConfig[]): Promise<void> {
  const configured = new Set(targets.flatMap((t) => t.columns.map((c) => `${targetName(t)}.${keyVersionColumn(c)}`)));
  const found = (await db.query<KeyVersionColumnInfo>(selectKeyVersionColumnsSql(schema))).rows;
  const missing = found.map((f) => `${f.schema}.${f.name}.${f.versionColumn}`).filter((name) => !configured.has(name));
  if (missing.length > 0) {
    throw new TargetError(
      `${missing.join(', ')} ${missing.length === 1 ? 'references' : 'reference'} the key registry but ${missing.length === 1 ? 'is' : 'are'} ` +
        'not the key-version column of any target in this config — run with the config that lists every target ' +
        '(or undo that target\'s migration if it is no longer encrypted)',
    );
  }
}
