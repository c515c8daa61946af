/**
 * Per-file test databases. Each test file clones its own database from the
 * run's template, so files run in parallel without seeing each other's tables.
 */

import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { quoteIdent } from '../../src/db/quote.js';
import { SqlState, sqlstateOf } from '../../src/db/sqlstate.js';
import { withTransaction } from '../../src/db/withTransaction.js';
import './provided.js';
import { withAdminClient } from './template.js';

/** A database of one's own, and how to give it back. */
export interface TestDatabase {
  /** Database name, `pgrekey_test_<run>_<label>_<random>`. */
  readonly name: string;
  /** Connection URL (superuser) of this database; hand it to the CLI or a second pool. */
  readonly url: string;
  /** A pool on `url`, ended by drop(). */
  readonly pool: pg.Pool;
  /** Ends the pool and drops the database (disconnecting anyone left). Idempotent. */
  drop(): Promise<void>;
}

/** Admin URL of the run's server, as provided by globalSetup. */
export function adminUrl(): string {
  return inject('pgAdminUrl');
}

/** `url` with its database replaced by `database`. */
export function urlForDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${encodeURIComponent(database)}`;
  return u.toString();
}

/** CREATE DATABASE from the template, retrying 55006 ("source database is being accessed by other users"). */
async function cloneTemplate(admin: pg.Client, name: string, template: string): Promise<void> {
  // The template refuses connections, so 55006 should not happen; the retry
  // covers servers where a checkpoint or autovacuum worker touches it briefly.
  for (let attempt = 1; ; attempt++) {
    try {
      await admin.query(`CREATE DATABASE ${quoteIdent(name)} TEMPLATE ${quoteIdent(template)}`);
      return;
    } catch (err) {
      if (sqlstateOf(err) !== SqlState.objectInUse || attempt >= 20) throw err;
      await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
    }
  }
}

/**
 * Creates a fresh database cloned from the template. `label` (letters, digits,
 * underscores; lower-cased, truncated) makes the name recognisable in
 * pg_stat_activity. Call drop() in afterAll, or use `useTestDatabase`.
 */
export async function createTestDatabase(label = 'db'): Promise<TestDatabase> {
  const safeLabel = label.toLowerCase().replace(/[^a-z0-9_]+/g, '_').slice(0, 24);
  const name = `pgrekey_test_${inject('pgRunId')}_${safeLabel}_${randomBytes(4).toString('hex')}`;
  const admin = adminUrl();
  await withAdminClient(admin, (client) => cloneTemplate(client, name, inject('pgTemplateDatabase')));
  const url = urlForDatabase(admin, name);
  const pool = createPool(url, { applicationName: 'pg-rekey-test', max: 10 });
  let dropped: Promise<void> | undefined;
  return {
    name,
    url,
    pool,
    drop: () =>
      (dropped ??= (async () => {
        await pool.end();
        // FORCE: a test that leaked a client (or a killed CLI subprocess) must not block cleanup.
        await withAdminClient(admin, (client) => client.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
      })()),
  };
}

/**
 * Registers beforeAll/afterAll that create and drop a database for the
 * calling test file; the returned handle is usable inside tests and hooks.
 */
export function useTestDatabase(label?: string): { readonly current: TestDatabase } {
  let db: TestDatabase | undefined;
  beforeAll(async () => {
    db = await createTestDatabase(label);
  });
  afterAll(async () => {
    await db?.drop();
  });
  return {
    get current(): TestDatabase {
      if (db === undefined) throw new Error('useTestDatabase: the database exists only inside tests and hooks');
      return db;
    },
  };
}

/**
 * Runs one statement as pg-rekey writes key-version hints (its transaction
 * marked, keyVersionWriter.ts): for tests that stage hints directly, which the
 * guard triggers would otherwise reset to NULL.
 */
export async function asKeyVersionWriter(pool: pg.Pool, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  return withTransaction(pool, (client) => client.query(text, values), { writesKeyVersions: true });
}

/**
 * Resolves once `sessions` (default 1) sessions of `pool`'s database wait for
 * a lock while running a statement like `like` (ILIKE), so a test acts while
 * a command is provably blocked rather than after a guessed sleep. Only this
 * database's sessions count: other test files share the server. Returns early
 * if `until` (the command being watched) settles first; throws after `timeoutMs`.
 */
export async function waitForLockWait(
  pool: pg.Pool,
  like = '%',
  options: { until?: Promise<unknown>; timeoutMs?: number; sessions?: number } = {},
): Promise<void> {
  let settled = false;
  void options.until?.then(
    () => (settled = true),
    () => (settled = true),
  );
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  const waiting = `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1`;
  while (!settled) {
    if ((await pool.query<{ n: number }>(waiting, [like])).rows[0]!.n >= (options.sessions ?? 1)) return;
    if (Date.now() > deadline) throw new Error(`no session waits on a lock running ${like}`);
    await sleep(50);
  }
}

/**
 * A checksum of the people table and of every pg-rekey table (keys, runs,
 * ranges, failures), to prove a command wrote nothing: compare it before and after.
 */
export async function checksumOfPeopleAndRegistry(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{ sum: string }>(
    `SELECT md5(
       (SELECT string_agg(p::text, '|' ORDER BY id) FROM people p) ||
       (SELECT coalesce(string_agg(r::text, '|' ORDER BY id), '') FROM pgrekey.runs r) ||
       (SELECT coalesce(string_agg(r::text, '|' ORDER BY id), '') FROM pgrekey.ranges r) ||
       (SELECT coalesce(string_agg(f::text, '|' ORDER BY id), '') FROM pgrekey.failures f) ||
       (SELECT coalesce(string_agg(k::text, '|' ORDER BY version), '') FROM pgrekey.keys k)) AS sum`,
  );
  return rows[0]!.sum;
}
