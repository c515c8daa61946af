import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import type { Logger } from 'pino';
import { assertDedicatedSession } from '../db/dedicatedSession.js';
import { connectClient } from '../db/pool.js';
import { quoteIdent } from '../db/quote.js';
import { RunConflictError, SchemaIncompatibleError, UsageError } from '../errors.js';
import { migrationFileNames } from './migrationFiles.js';
import { lockMigrateDownSql, MIGRATION_LOCK_ID } from './migrationLock.js';

/**
 * The package root: the nearest directory above this module holding package.json.
 * Searched rather than fixed because this module runs both compiled
 * (dist/src/schema/) and from source under vitest (src/schema/).
 */
function findPackageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('pg-rekey: cannot find its package.json above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** Where pg-rekey's own migrations ship: `<package>/migrations`. */
export const OWN_MIGRATIONS_DIR = path.join(findPackageRoot(), 'migrations');

/** Our migrations table, inside our schema: never node-pg-migrate's default `pgmigrations`. */
export const OWN_MIGRATIONS_TABLE = 'pgrekey_migrations';

/** The table tracking target migrations (`target add` output), separately from ours. */
export const TARGET_MIGRATIONS_TABLE = 'target_migrations';

// A session lock (MIGRATION_LOCK_ID) is fine here: a migration is short and runs on one connection.
const LOCK_POLL_MS = 250;

/**
 * Takes the migration lock, polling with pg_try_advisory_lock rather than
 * waiting inside pg_advisory_lock: a session blocked in that SELECT holds a
 * snapshot, and CREATE INDEX CONCURRENTLY in the lock holder's target migration
 * waits for every older snapshot — a deadlock (40P01) that failed all but one
 * of several hosts running `migrate up` together. Between polls this session
 * holds no snapshot. The lock is the session's: it goes with the connection.
 */
async function acquireMigrationLock(client: pg.Client, logger: Logger | undefined): Promise<void> {
  for (let waited = false; ; waited = true) {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_ID]);
    if (rows[0]!.locked) return;
    if (!waited) logger?.info('another pg-rekey migrate holds the migration lock; waiting for it');
    await sleep(LOCK_POLL_MS);
  }
}

/** What to migrate and how. */
export interface MigrateOptions {
  databaseUrl: string;
  schema: string;
  /** The target migrations directory (config.migrationsDir); absent = ours only. */
  targetMigrationsDir?: string | undefined;
  direction: 'up' | 'down';
  /** For `down`: how many migrations to undo, a whole number ≥ 1 (default 1), or Infinity for all. */
  count?: number;
  /** Print the SQL instead of running it; nothing is written. */
  dryRun?: boolean;
  logger?: Logger;
}

/** The outcome of a migrate call: which migrations ran (or would run), and their SQL on dry runs. */
export interface MigrateResult {
  own: string[];
  target: string[];
  sql: string[];
}

/**
 * Undoing a migration while a rotation run is open would pull the key-version
 * columns (or the run's own tables) from under it: its workers would fail
 * mid-batch and the run could not be resumed. Refused (RunConflictError, exit 4).
 */
async function refuseWhileRotationOpen(client: pg.Client, schema: string): Promise<void> {
  const installed = await client.query<{ exists: boolean }>({
    text: `SELECT to_regclass(pg_catalog.format('%I.runs', $1::text)) IS NOT NULL AS exists`,
    values: [schema],
  });
  if (!installed.rows[0]!.exists) return;
  const open = await client.query<{ id: string }>(
    `SELECT id::text FROM ${quoteIdent(schema)}.runs WHERE kind = 'rotate' AND status IN ('running', 'stopped') LIMIT 1`,
  );
  if (open.rows[0]) {
    throw new RunConflictError(
      `rotation run ${open.rows[0].id} is unfinished — finish it ("pg-rekey rotate") before undoing migrations: ` +
        'they would remove the columns and tables it writes; nothing was undone',
    );
  }
}

/**
 * A schema holding migrations this pg-rekey does not ship was migrated by a
 * newer pg-rekey (a host not upgraded yet, a rolled-back deploy). node-pg-migrate
 * would call it current on `up` — the deploy's gate passes, then every command
 * exits 3 — and fail `down` as a database error (exit 69). Refused here the way
 * every other command refuses it (SchemaIncompatibleError, exit 3).
 */
async function refuseNewerSchema(client: pg.Client, schema: string): Promise<void> {
  if (!(await trackingTableExists(client, schema, OWN_MIGRATIONS_TABLE))) return;
  const { rows } = await client.query<{ name: string }>(`SELECT name FROM ${quoteIdent(schema)}.${quoteIdent(OWN_MIGRATIONS_TABLE)} ORDER BY name`);
  const known = await ownMigrationNames();
  const unknown = rows.map((r) => r.name).filter((n) => !known.includes(n));
  if (unknown.length > 0) {
    throw new SchemaIncompatibleError(
      `the ${schema} schema is newer than this pg-rekey (it has ${unknown.join(', ')}) — upgrade pg-rekey; ` +
        'to go back to this version, undo those with "pg-rekey migrate down" of the version that applied them; nothing was changed',
    );
  }
}

/** Names (without extension) of pg-rekey's own migrations, in order. */
export async function ownMigrationNames(): Promise<string[]> {
  const files = await readdir(OWN_MIGRATIONS_DIR);
  return files
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.replace(/\.sql$/, ''))
    .sort();
}

/**
 * Applies (or undoes) pg-rekey's migrations, then the target migrations.
 * Several processes may run it at once: all wait for one advisory lock, the
 * first applies, the others find nothing left to do. `down` undoes target
 * migrations first.
 */
export async function migrate(options: MigrateOptions): Promise<MigrateResult> {
  assertDownCount(options);
  const client = await connectClient(options.databaseUrl, 'pg-rekey migrate');
  const sql: string[] = [];
  try {
    // A dry run still makes node-pg-migrate create its schema and table to read
    // what has run; doing it in a transaction we roll back keeps "nothing written".
    // It writes nothing and needs no lock (inside its transaction a session lock is
    // pointless), and as one transaction it also runs whole through a transaction-mode pooler.
    if (options.dryRun) await client.query('BEGIN');
    else {
      // Before the lock and anything written: behind a transaction-mode pooler, both would go astray.
      await assertDedicatedSession(client, options.databaseUrl, 'pg-rekey migrate');
      await acquireMigrationLock(client, options.logger);
    }
    await refuseNewerSchema(client, options.schema);
    if (options.direction === 'down') {
      // Held until the end: a rotation starting after the check below would
      // have its columns removed under it (planRun.ts refuses to start one).
      if (!options.dryRun) await client.query(lockMigrateDownSql());
      await refuseWhileRotationOpen(client, options.schema);
    }
    const run = (which: 'own' | 'target') => runOne(client, options, which, sql);
    const result: MigrateResult = { own: [], target: [], sql };
    if (options.direction === 'up') {
      result.own = await run('own');
      if (options.targetMigrationsDir !== undefined && (await directoryHasFiles(options.targetMigrationsDir))) result.target = await run('target');
    } else {
      // A stage with nothing applied (no tracking table, or no row in it) has
      // nothing to undo. Running it anyway makes node-pg-migrate create our
      // schema and that table, after which every command takes the database for
      // an old install ("older than this pg-rekey") instead of none ("not installed").
      const targetsApplied = await appliedTargetMigrations(client, options.schema);
      if (targetsApplied.length > 0) {
        await refuseMissingTargetFiles(targetsApplied, options.targetMigrationsDir);
        result.target = await run('target');
      }
      if (result.target.length === 0 && (await trackingTableExists(client, options.schema, OWN_MIGRATIONS_TABLE))) {
        result.own = await run('own');
      }
    }
    return result;
  } finally {
    if (options.dryRun) await client.query('ROLLBACK').catch(() => undefined);
    await client.end();
  }
}

/** Names of the target migrations `schema` records as applied (none when it has no tracking table). */
async function appliedTargetMigrations(client: pg.Client, schema: string): Promise<string[]> {
  if (!(await trackingTableExists(client, schema, TARGET_MIGRATIONS_TABLE))) return [];
  const { rows } = await client.query<{ name: string }>(`SELECT name FROM ${quoteIdent(schema)}.${quoteIdent(TARGET_MIGRATIONS_TABLE)}`);
  return rows.map((r) => r.name);
}

/**
 * Down undoes pg-rekey's own schema only once no target migration is applied:
 * target tables' triggers and foreign keys use it. Run where migrationsDir
 * lacks an applied target migration's file (a host with the config but not
 * the migrations), down took the target stage for finished and undid our own
 * migrations instead — the audit trail's chain with them. Refused (exit 2).
 */
async function refuseMissingTargetFiles(applied: readonly string[], dir: string | undefined): Promise<void> {
  const files = dir === undefined ? [] : await migrationFileNames(dir);
  const missing = applied.filter((name) => !files.includes(name));
  if (missing.length === 0) return;
  throw new UsageError(
    `target migration(s) ${missing.join(', ')} are applied but not in migrationsDir (${dir ?? 'none given'}) — ` +
      'run "pg-rekey migrate down" with the config whose migrationsDir holds them: target migrations are undone ' +
      "before pg-rekey's own; nothing was undone",
  );
}

/** Whether `schema`.`table` (a migrations tracking table) exists. */
async function trackingTableExists(client: pg.Client, schema: string, table: string): Promise<boolean> {
  const { rows } = await client.query<{ exists: boolean }>({
    text: 'SELECT to_regclass(pg_catalog.format($1::text, $2::text, $3::text)) IS NOT NULL AS exists',
    values: ['%I.%I', schema, table],
  });
  return rows[0]!.exists;
}

async function runOne(
  client: pg.Client,
  options: MigrateOptions,
  which: 'own' | 'target',
  sql: string[],
): Promise<string[]> {
  const own = which === 'own';
  // Loaded here, not at the top: node-pg-migrate (with jiti) adds ~90 ms to the
  // start-up of every command, and only the migrate commands run migrations.
  const { runner } = await import('node-pg-migrate');
  const ran = await runner({
    dbClient: client,
    dir: own ? OWN_MIGRATIONS_DIR : options.targetMigrationsDir!,
    migrationsTable: own ? OWN_MIGRATIONS_TABLE : TARGET_MIGRATIONS_TABLE,
    migrationsSchema: options.schema,
    createMigrationsSchema: true,
    // Ours are written unqualified and land in the configured schema via search_path;
    // target migrations qualify every name themselves.
    ...(own ? { schema: options.schema, createSchema: true } : {}),
    direction: options.direction,
    count: options.direction === 'down' ? (options.count ?? 1) : Infinity,
    checkOrder: true,
    dryRun: options.dryRun ?? false,
    // migrate() holds our lock for both runs (see acquireMigrationLock).
    noLock: true,
    verbose: true,
    logger: {
      debug: (msg: string) => {
        if (options.dryRun) sql.push(msg.trim());
      },
      info: (msg: string) => options.logger?.debug({ migration: which }, msg),
      warn: (msg: string) => options.logger?.debug({ migration: which }, msg),
      error: (msg: string) => options.logger?.error({ migration: which }, msg),
    },
  });
  // The run for our schema set search_path on this shared connection; undo it.
  if (own) await client.query('RESET search_path');
  return ran.map((m) => m.name);
}

/**
 * node-pg-migrate undoes the last |count| migrations by slicing with -count, so
 * 0 or NaN select every migration: a typo would drop the schema and the audit
 * trail. Only a positive whole number, or Infinity (the CLI's --all), is accepted.
 */
function assertDownCount(options: MigrateOptions): void {
  const count = options.count;
  if (options.direction !== 'down' || count === undefined || count === Number.POSITIVE_INFINITY) return;
  if (!Number.isSafeInteger(count) || count < 1) {
    throw new UsageError(`migrate down: count must be a whole number of at least 1 (got ${count}); undo everything with --all`);
  }
}

async function directoryHasFiles(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).some((f) => !f.startsWith('.'));
  } catch {
    return false;
  }
}
