/**
 * The reference workload of DESIGN §7: `people(id bigint pk, name, email,
 * mobno)` whose email and mobno hold django-fernet-v1 values under an "old"
 * SECRET_KEY, every seventh mobno NULL. Seeded once into a template database;
 * every measurement runs on a fresh copy (CREATE DATABASE … TEMPLATE), so each
 * starts from the same bytes.
 */
import pg from 'pg';
import { quoteIdent } from '../src/db/quote.js';
import { createDualKeyWorkspace, seedPeople as seedReferencePeople, type DualKeyWorkspace } from '../support/referenceWorkload.js';

export { NEW_SECRET, OLD_SECRET, dualKeyCodec } from '../support/referenceWorkload.js';

/** The URL of database `name` on the server of `adminUrl`. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs `fn` with a one-connection pool on `url`, always closing it. */
export async function withDb<T>(url: string, fn: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  // A DROP DATABASE … WITH (FORCE) may terminate a connection still closing: not an error here.
  pool.on('error', () => {});
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** Drops (if present) and creates `name`, optionally as a copy of `template`. */
export async function createDatabase(adminUrl: string, name: string, template?: string): Promise<string> {
  await withDb(adminUrl, async (pool) => {
    await pool.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`);
    // FILE_COPY copies the files instead of WAL-logging every block: much faster for a big template.
    const from = template ? ` TEMPLATE ${quoteIdent(template)} STRATEGY FILE_COPY` : '';
    await pool.query(`CREATE DATABASE ${quoteIdent(name)}${from}`);
  });
  return databaseUrl(adminUrl, name);
}

/** Drops database `name` if it exists. */
export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withDb(adminUrl, (pool) => pool.query(`DROP DATABASE IF EXISTS ${quoteIdent(name)} WITH (FORCE)`));
}

/** Creates the reference `people` table in the database at `url` (see support/referenceWorkload.ts). */
export async function seedPeople(url: string, rows: number, unique = rows): Promise<void> {
  await withDb(url, (pool) => seedReferencePeople(pool, rows, { unique }));
}

/** A temp directory with a pg-rekey config (new key primary, old key decrypt-only) and the CLI's env. */
export type Workspace = DualKeyWorkspace;

/** Writes the config the bench's CLI runs use. */
export function createWorkspace(url: string): Promise<Workspace> {
  return createDualKeyWorkspace(url, 'pg-rekey-bench-ws-');
}
