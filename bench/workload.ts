/**
 * The reference workload of DESIGN §7: `people(id bigint pk, name, email,
 * mobno)` whose email and mobno hold django-fernet-v1 values under an "old"
 * SECRET_KEY, every seventh mobno NULL. Seeded once into a template database;
 * every measurement runs on a fresh copy (CREATE DATABASE … TEMPLATE), so each
 * starts from the same bytes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createCodec } from '../src/crypto/createCodec.js';
import type { Codec } from '../src/crypto/codec.js';
import { quoteIdent } from '../src/db/quote.js';

/** The application's old SECRET_KEY (what the data is encrypted under). */
export const OLD_SECRET = 'django-insecure-7^x#r0tation-old-key-0001!vbn@q';
/** The new SECRET_KEY the rotation moves to. */
export const NEW_SECRET = 'django-insecure-n3w-r0tation-key-0002!zzq@p#1x';

/** A codec with the new key primary and the old one decrypt-only (dual-key deployment). */
export function dualKeyCodec(): Promise<Codec> {
  return createCodec({
    format: 'django-fernet-v1',
    keys: [
      { id: 'new', secret: 'env:NEW' },
      { id: 'old', secret: 'env:OLD' },
    ],
    env: { NEW: NEW_SECRET, OLD: OLD_SECRET },
  });
}

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

const SEED_CHUNK = 5000;

/**
 * Creates `people` with `rows` rows under the old key. Rows beyond `unique`
 * reuse the ciphertexts of row `id mod unique` (valid values under the old key,
 * same cost to rotate), so a 5N table costs no more crypto to seed than N.
 */
export async function seedPeople(url: string, rows: number, unique = rows): Promise<void> {
  const codec = await dualKeyCodec();
  await withDb(url, async (pool) => {
    await pool.query('CREATE TABLE people (id bigint PRIMARY KEY, name text NOT NULL, email text, mobno text)');
    for (let start = 1; start <= Math.min(rows, unique); start += SEED_CHUNK) {
      const ids: number[] = [];
      const emails: string[] = [];
      const mobnos: (string | null)[] = [];
      for (let id = start; id < Math.min(start + SEED_CHUNK, Math.min(rows, unique) + 1); id++) {
        ids.push(id);
        emails.push(codec.encrypt(`user${id}@example.com`, { keyId: 'old' }));
        mobnos.push(id % 7 === 0 ? null : codec.encrypt(`+1555${String(id).padStart(7, '0')}`, { keyId: 'old' }));
      }
      await pool.query(
        `INSERT INTO people (id, name, email, mobno)
         SELECT id, 'name ' || id, e, m FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, e, m)`,
        [ids, emails, mobnos],
      );
    }
    if (rows > unique) {
      await pool.query(
        `INSERT INTO people (id, name, email, mobno)
         SELECT g, 'name ' || g, p.email, CASE WHEN g % 7 = 0 THEN NULL ELSE coalesce(p.mobno, p2.mobno) END
           FROM generate_series($1::bigint, $2::bigint) AS g
           JOIN people p ON p.id = (g - 1) % $3 + 1
           JOIN people p2 ON p2.id = 1`,
        [unique + 1, rows, unique],
      );
    }
    await pool.query('VACUUM ANALYZE people');
  });
}

/** A temp directory with a pg-rekey config (new key primary, old key decrypt-only) and the CLI's env. */
export interface Workspace {
  dir: string;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/** Writes the config the bench's CLI runs use. */
export async function createWorkspace(url: string): Promise<Workspace> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-bench-ws-'));
  const config = {
    keys: [
      { id: 'new', secret: 'env:SECRET_KEY' },
      { id: 'old', secret: 'env:SECRET_KEY_OLD' },
    ],
    targets: [],
  };
  await writeFile(path.join(dir, 'pg-rekey.config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return {
    dir,
    env: { DATABASE_URL: url, SECRET_KEY: NEW_SECRET, SECRET_KEY_OLD: OLD_SECRET },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
