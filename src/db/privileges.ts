/**
 * Checks that pg-rekey's role may read and write the columns a command needs,
 * before the command writes anything. Without them the first statement on the
 * table failed with 42501 after the command had already begun: a rotation run
 * left open (another rotation then exits 4 until it is finished), a verify run
 * recorded as failed in the append-only audit trail.
 */

import { DatabaseError } from '../errors.js';
import { formatIdent, formatQualifiedName, qualifiedName, type QualifiedName } from './quote.js';
import { sql, type Sql } from './sql.js';
import type { Queryable } from './withTransaction.js';

/** A privilege pg-rekey needs on a table's columns. */
export type ColumnPrivilege = 'SELECT' | 'UPDATE';

/** Which of `columns` of `table` the current role lacks `privilege` on (a table-level grant counts), in the given order. */
export function selectColumnsLackingPrivilegeSql(table: QualifiedName, columns: readonly string[], privilege: ColumnPrivilege): Sql {
  return sql(
    `SELECT current_user AS role,
            coalesce(pg_catalog.array_agg(u.col ORDER BY u.ord) FILTER (
              WHERE NOT pg_catalog.has_column_privilege(pg_catalog.to_regclass($1), u.col, $3)), '{}') AS missing
       FROM pg_catalog.unnest($2::text[]) WITH ORDINALITY AS u(col, ord)`,
    [qualifiedName(table), columns, privilege],
  );
}

/**
 * Throws DatabaseError (exit 69: the database refuses us) naming the role, the
 * table and the columns when the role lacks `privilege` on any of `columns`;
 * `purpose` says what the command does with them.
 */
export async function assertColumnPrivilege(
  db: Queryable,
  table: QualifiedName,
  columns: readonly string[],
  privilege: ColumnPrivilege,
  purpose: string,
): Promise<void> {
  const { rows } = await db.query<{ role: string; missing: string[] }>(selectColumnsLackingPrivilegeSql(table, columns, privilege));
  const { role, missing } = rows[0]!;
  if (missing.length === 0) return;
  const where = formatQualifiedName(table);
  const grantee = formatIdent(role);
  throw new DatabaseError(
    `permission denied: role ${grantee} may not ${privilege} column(s) ${missing.join(', ')} of ${where}, which pg-rekey ${purpose} — ` +
      `GRANT ${privilege} ON ${where} TO ${grantee} (or on those columns); nothing was written`,
  );
}
