import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';
import { SchemaIncompatibleError, SchemaMissingError } from '../errors.js';
import { OWN_MIGRATIONS_TABLE, ownMigrationNames } from './migrate.js';

/** Names of our migrations recorded as applied in `schema`, or null when there is no such table. */
function selectAppliedSql(schema: string): Sql {
  return sql(
    `SELECT coalesce(pg_catalog.array_agg(name ORDER BY name), '{}') AS names
       FROM ${quoteIdent(schema)}.${quoteIdent(OWN_MIGRATIONS_TABLE)}`,
  );
}

/**
 * Throws unless the pg_rekey schema is exactly at this version of pg-rekey:
 * missing → SchemaMissingError, older or newer → SchemaIncompatibleError, each
 * naming the command that fixes it. Every command but `migrate` calls this first.
 */
export async function assertSchemaCurrent(db: Queryable, schema: string): Promise<void> {
  const { rows } = await db.query<{ exists: boolean }>({
    text: 'SELECT to_regclass(pg_catalog.format($1::text, $2::text, $3::text)) IS NOT NULL AS exists',
    values: ['%I.%I', schema, OWN_MIGRATIONS_TABLE],
  });
  if (!rows[0]?.exists) {
    throw new SchemaMissingError(
      `the ${schema} schema is not installed in this database — run "pg-rekey migrate up" first`,
    );
  }
  const applied = (await db.query<{ names: string[] }>(selectAppliedSql(schema))).rows[0]?.names ?? [];
  const known = await ownMigrationNames();
  const missing = known.filter((n) => !applied.includes(n));
  const unknown = applied.filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    throw new SchemaIncompatibleError(
      `the ${schema} schema is newer than this pg-rekey (it has ${unknown.join(', ')}) — upgrade pg-rekey`,
    );
  }
  if (missing.length > 0) {
    throw new SchemaIncompatibleError(
      `the ${schema} schema is older than this pg-rekey (missing ${missing.join(', ')}) — run "pg-rekey migrate up"`,
    );
  }
}
