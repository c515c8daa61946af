import type pg from 'pg';
import { connectClient } from '../db/pool.js';
import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import { OWN_MIGRATIONS_TABLE, TARGET_MIGRATIONS_TABLE, ownMigrationNames } from './migrate.js';
import { migrationFileNames } from './migrationFiles.js';

/** One migration and whether the database has applied it. */
export interface MigrationState {
  name: string;
  applied: boolean;
  /** When it was applied (node-pg-migrate's run_on), or null. */
  appliedAt: Date | null;
  /** Recorded as applied but its file is gone (a downgrade, or a deleted target migration). */
  missingFile: boolean;
}

/** Applied and pending migrations: pg-rekey's own and the target migrations, tracked separately. */
export interface MigrationStatus {
  schema: string;
  own: MigrationState[];
  target: MigrationState[];
  targetMigrationsDir: string | null;
}

function selectAppliedSql(schema: string, table: string): Sql {
  return sql(`SELECT name, run_on AS "runOn" FROM ${quoteIdent(schema)}.${quoteIdent(table)} ORDER BY run_on, id`);
}

async function appliedIn(client: pg.Client, schema: string, table: string): Promise<Map<string, Date>> {
  const exists = await client.query<{ exists: boolean }>({
    text: 'SELECT to_regclass(pg_catalog.format($1::text, $2::text, $3::text)) IS NOT NULL AS exists',
    values: ['%I.%I', schema, table],
  });
  if (!exists.rows[0]?.exists) return new Map();
  const rows = (await client.query<{ name: string; runOn: Date }>(selectAppliedSql(schema, table))).rows;
  return new Map(rows.map((r) => [r.name, r.runOn]));
}

function merge(files: readonly string[], applied: Map<string, Date>): MigrationState[] {
  const names = [...new Set([...files, ...applied.keys()])].sort();
  return names.map((name) => ({
    name,
    applied: applied.has(name),
    appliedAt: applied.get(name) ?? null,
    missingFile: !files.includes(name),
  }));
}

/** Reads which of our and the target migrations are applied; writes nothing (not even the tracking tables). */
export async function migrationStatus(options: {
  databaseUrl: string;
  schema: string;
  targetMigrationsDir?: string | undefined;
}): Promise<MigrationStatus> {
  const client = await connectClient(options.databaseUrl, 'pg-rekey migrate status');
  try {
    const own = merge(await ownMigrationNames(), await appliedIn(client, options.schema, OWN_MIGRATIONS_TABLE));
    const targetFiles = options.targetMigrationsDir ? await migrationFileNames(options.targetMigrationsDir) : [];
    const target = merge(targetFiles, await appliedIn(client, options.schema, TARGET_MIGRATIONS_TABLE));
    return { schema: options.schema, own, target, targetMigrationsDir: options.targetMigrationsDir ?? null };
  } finally {
    await client.end();
  }
}
