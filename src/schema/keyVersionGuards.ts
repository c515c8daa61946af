/**
 * The guard triggers a target migration puts on each key-version column
 * (targetMigration.ts) keep the hints honest: an application's write of a
 * value, or an insert, leaves its key version NULL, "unknown, examine".
 * Without them — dropped to widen a column and never re-created, disabled for
 * a bulk load and forgotten — a value a host writes under an old key keeps the
 * hint of the new one: rotate skips it, and `keys retire` counts it as moved
 * and retires a key it still needs. The commands that trust the hints (rotate,
 * verify, keys retire) check the guards are there and enabled first.
 */
import type { TableInfo } from '../db/catalog.js';
import { formatIdent, formatQualifiedName } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { TargetError } from '../errors.js';
import { keyVersionObjectNames } from './targetMigration.js';

/**
 * The named triggers on a table and, for a partitioned one, on its partitions
 * (they carry clones; pg_partition_tree() lists nothing for a plain table):
 * whether each is on the table itself, and whether it fires in ordinary
 * sessions everywhere ('O' origin or 'A' always; 'D' disabled and 'R'
 * replica-only do not).
 */
function selectGuardTriggersSql(oid: number, names: readonly string[]): Sql {
  return sql(
    `SELECT t.tgname AS name, bool_or(t.tgrelid = $1::oid) AS "onTable", bool_and(t.tgenabled IN ('O', 'A')) AS enabled
       FROM pg_catalog.pg_trigger t
      WHERE (t.tgrelid = $1::oid OR t.tgrelid IN (SELECT relid FROM pg_catalog.pg_partition_tree($1::oid::regclass)))
        AND t.tgname = ANY($2::text[]) AND NOT t.tgisinternal
      GROUP BY t.tgname`,
    [oid, names],
  );
}

/** Throws a TargetError (exit 2) naming the first guard trigger of `columns` that is missing or does not fire. */
export async function assertKeyVersionGuards(db: Queryable, table: TableInfo, columns: readonly string[]): Promise<void> {
  const where = formatQualifiedName(table);
  const expected = columns.flatMap((column) => {
    const names = keyVersionObjectNames(table.name, column);
    return [names.trigger, names.insertTrigger].map((name) => ({ column, name }));
  });
  const found = new Map(
    (await db.query<{ name: string; onTable: boolean; enabled: boolean }>(selectGuardTriggersSql(table.oid, expected.map((e) => e.name)))).rows.map((r) => [r.name, r]),
  );
  const why =
    'without it an application write under an old key keeps the new key\'s version, so rotate would skip that value ' +
    'and keys retire could retire a key it still needs';
  for (const { column, name } of expected) {
    const trigger = found.get(name);
    if (!trigger?.onTable) {
      throw new TargetError(
        `${where}.${column}: the key-version guard trigger ${name} is missing — ${why}. Re-create it with its CREATE TRIGGER ` +
          'statement from the table\'s target migration (in migrationsDir), then run "pg-rekey verify --fix-versions": ' +
          'values written meanwhile may carry a wrong key version',
      );
    }
    if (!trigger.enabled) {
      throw new TargetError(
        `${where}.${column}: the key-version guard trigger ${name} is disabled — ${why}. Enable it ` +
          `(ALTER TABLE ${where} ENABLE TRIGGER ${formatIdent(name)}), then run "pg-rekey verify --fix-versions": ` +
          'values written while it was off may carry a wrong key version',
      );
    }
  }
}
