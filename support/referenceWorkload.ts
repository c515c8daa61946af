/**
 * The reference workload of DESIGN §7, shared by the integration tests and the
 * benchmark: `people(id bigint pk, name, email, mobno)` whose email and mobno
 * hold django-fernet-v1 values under an "old" SECRET_KEY, every seventh mobno NULL.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { createCodec } from '../src/crypto/createCodec.js';
import type { Codec } from '../src/crypto/codec.js';
import { quoteIdent } from '../src/db/quote.js';

/** The application's old SECRET_KEY (what the data is encrypted under). */
export const OLD_SECRET = 'django-insecure-7^x#r0tation-old-key-0001!vbn@q';
/** The new SECRET_KEY the rotation moves to. */
export const NEW_SECRET = 'django-insecure-n3w-r0tation-key-0002!zzq@p#1x';

/** The plaintexts row `id` holds (deterministic, so every row can be checked). */
export function plaintextsOf(id: number): { email: string; mobno: string | null } {
  return { email: `user${id}@example.com`, mobno: id % 7 === 0 ? null : `+1555${String(id).padStart(7, '0')}` };
}

/** A codec with the new key primary and the old one decrypt-only: the application in dual-key mode. */
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

const SEED_CHUNK = 5000;

/**
 * Creates `table` with `rows` rows under the old key. Rows beyond `unique`
 * reuse the ciphertexts of row `id mod unique` (valid values under the old key,
 * same cost to rotate), so a big table costs no more crypto to seed than a small one.
 */
export async function seedPeople(pool: pg.Pool, rows: number, options: { table?: string; unique?: number } = {}): Promise<void> {
  const table = quoteIdent(options.table ?? 'people');
  const unique = Math.min(rows, options.unique ?? rows);
  const codec = await dualKeyCodec();
  await pool.query(`CREATE TABLE ${table} (id bigint PRIMARY KEY, name text NOT NULL, email text, mobno text)`);
  for (let start = 1; start <= unique; start += SEED_CHUNK) {
    const ids: number[] = [];
    const emails: string[] = [];
    const mobnos: (string | null)[] = [];
    for (let id = start; id < Math.min(start + SEED_CHUNK, unique + 1); id++) {
      const p = plaintextsOf(id);
      ids.push(id);
      emails.push(codec.encrypt(p.email, { keyId: 'old' }));
      mobnos.push(p.mobno === null ? null : codec.encrypt(p.mobno, { keyId: 'old' }));
    }
    await pool.query(
      `INSERT INTO ${table} (id, name, email, mobno)
       SELECT id, 'name ' || id, e, m FROM unnest($1::bigint[], $2::text[], $3::text[]) AS u(id, e, m)`,
      [ids, emails, mobnos],
    );
  }
  if (rows > unique) {
    await pool.query(
      `INSERT INTO ${table} (id, name, email, mobno)
       SELECT g, 'name ' || g, p.email, CASE WHEN g % 7 = 0 THEN NULL ELSE coalesce(p.mobno, p2.mobno) END
         FROM generate_series($1::bigint, $2::bigint) AS g
         JOIN ${table} p ON p.id = (g - 1) % $3 + 1
         JOIN ${table} p2 ON p2.id = 1`,
      [unique + 1, rows, unique],
    );
  }
  await pool.query(`VACUUM ANALYZE ${table}`);
}

/** A temp directory holding a pg-rekey config, and the env the CLI runs with there. */
export interface DualKeyWorkspace {
  dir: string;
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

/**
 * Writes a config with the new key first (so it becomes primary when first
 * registered) and the old one decrypt-only, both read from env, plus `extra`
 * config fields, in a temp dir named after `prefix`.
 */
export async function createDualKeyWorkspace(
  databaseUrl: string,
  prefix: string,
  extra: Record<string, unknown> = {},
): Promise<DualKeyWorkspace> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  const config = {
    keys: [
      { id: 'new', secret: 'env:SECRET_KEY' },
      { id: 'old', secret: 'env:SECRET_KEY_OLD' },
    ],
    targets: [],
    ...extra,
  };
  await writeFile(path.join(dir, 'pg-rekey.config.json'), `${JSON.stringify(config, null, 2)}\n`);
  return {
    dir,
    env: { DATABASE_URL: databaseUrl, SECRET_KEY: NEW_SECRET, SECRET_KEY_OLD: OLD_SECRET },
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}
