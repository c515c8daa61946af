/**
 * Keyset pagination on keys other than bigint: a uuid key, a text key with a
 * non-default collation (ICU "en", where 'a' < 'B', unlike the database's C
 * order), and a composite (int, text) key — with keys that need quoting in
 * array literals (quotes, backslashes, commas, braces, spaces, non-ASCII).
 * Several ranges per table, small batches, a kill -9 mid-run and a resume:
 * every row must end under the new key with its plaintext, rewritten exactly
 * once (nothing skipped, nothing twice).
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, createWorkspace, expectExit, startCli, waitForStderr, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('keytypes');
let ws: RotationWorkspace;
const ROWS = 12_000; // above one planned range (10,000 rows), so each table gets several

/** A table, its key columns, and the key of row i as the SQL values to insert and as one text. */
interface KeyedTable {
  name: string;
  keyDdl: string;
  keyColumns: string[];
  /** A SQL expression over NEW giving the row's key as text (for the rewrite counter). */
  keyText: string;
  keyOf(i: number): { values: unknown[]; text: string };
}

// Keys that sort differently under ICU "en" and under C, and that need escaping in array literals.
const awkward = ['a', 'B', 'c', 'D', `O'Brien "q"`, 'back\\slash', 'comma,brace{}', 'space d', 'Ärger', 'zebra'];
const handleOf = (i: number) => `${awkward[i % awkward.length]} ${i}`;

const uuids = Array.from({ length: ROWS }, () => randomUUID());
const TABLES: KeyedTable[] = [
  {
    name: 'accounts',
    keyDdl: 'id uuid PRIMARY KEY',
    keyColumns: ['id'],
    keyText: 'NEW.id::text',
    keyOf: (i) => ({ values: [uuids[i]], text: uuids[i]! }),
  },
  {
    name: 'handles',
    keyDdl: 'handle text COLLATE "en-x-icu" PRIMARY KEY',
    keyColumns: ['handle'],
    keyText: 'NEW.handle',
    keyOf: (i) => ({ values: [handleOf(i)], text: handleOf(i) }),
  },
  {
    name: 'memberships',
    keyDdl: 'tenant int NOT NULL, handle text COLLATE "en-x-icu" NOT NULL, PRIMARY KEY (tenant, handle)',
    keyColumns: ['tenant', 'handle'],
    keyText: `NEW.tenant || '/' || NEW.handle`,
    // Few tenants, so ranges split inside a tenant on the text part.
    keyOf: (i) => ({ values: [i % 3, handleOf(i)], text: `${i % 3}/${handleOf(i)}` }),
  },
];

const plaintextOf = (keyText: string) => `${keyText}@example.com`;

beforeAll(async () => {
  const pool = db.current.pool;
  const codec = await bothKeysCodec();
  await pool.query(`CREATE TABLE rewrites (tbl text, k text, n int NOT NULL, PRIMARY KEY (tbl, k))`);
  for (const t of TABLES) {
    await pool.query(`CREATE TABLE ${t.name} (${t.keyDdl}, email text)`);
    const columns = t.keyColumns.map((_, c) => Array.from({ length: ROWS }, (_, i) => t.keyOf(i).values[c]));
    const emails = Array.from({ length: ROWS }, (_, i) => codec.encrypt(plaintextOf(t.keyOf(i).text), { keyId: 'old' }));
    const types = t.keyColumns.map((name) => (name === 'id' ? 'uuid' : name === 'tenant' ? 'int' : 'text'));
    await pool.query(
      `INSERT INTO ${t.name} (${t.keyColumns.join(', ')}, email)
       SELECT * FROM unnest(${types.map((type, c) => `$${c + 1}::${type}[]`).join(', ')}, $${types.length + 1}::text[])`,
      [...columns, emails],
    );
    await pool.query(`
      CREATE FUNCTION count_${t.name}() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.email IS DISTINCT FROM OLD.email THEN
          INSERT INTO rewrites VALUES ('${t.name}', ${t.keyText}, 1) ON CONFLICT (tbl, k) DO UPDATE SET n = rewrites.n + 1;
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER count_rewrite AFTER UPDATE ON ${t.name} FOR EACH ROW EXECUTE FUNCTION count_${t.name}();
      ANALYZE ${t.name};`);
  }
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
  for (const t of TABLES) {
    expectExit(await ws.run(['target', 'add', '--table', `public.${t.name}`, '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  }
  expectExit(await ws.run(['migrate', 'up']), 0);
}, 120_000);

afterAll(async () => {
  await ws?.cleanup();
});

describe('rotate on uuid, collated text and composite keys', () => {
  it('plans several ranges per table, survives a kill -9, and rewrites every row exactly once', async () => {
    const FAST = ['--batch-size', '97', '--lease', '1s'];
    const cli = await startCli(ws, ['rotate', ...FAST, '--max-rate', '4000']);
    await waitForStderr(cli, /rotation run \d+/);
    await sleep(1500);
    expect(cli.child.exitCode).toBeNull(); // still running: 36,000 rows at 4,000 rows/s
    cli.child.kill('SIGKILL');
    expect((await cli.done).signal).toBe('SIGKILL');

    const ranges = await db.current.pool.query<{ target: string; n: number }>(
      `SELECT target, count(*)::int AS n FROM pgrekey.ranges GROUP BY target ORDER BY target`,
    );
    expect(ranges.rows.map((r) => r.target)).toEqual(TABLES.map((t) => `public.${t.name}`));
    for (const r of ranges.rows) expect(r.n, r.target).toBeGreaterThan(1);

    const final = await ws.run(['rotate', ...FAST, '--json']);
    expectExit(final, 0);
    expect(JSON.parse(final.stdout).status).toBe('succeeded');

    const codec = await bothKeysCodec();
    for (const t of TABLES) {
      const rewrites = await db.current.pool.query<{ rows: number; once: number }>(
        `SELECT count(*)::int AS rows, count(*) FILTER (WHERE n = 1)::int AS once FROM rewrites WHERE tbl = $1`,
        [t.name],
      );
      expect(rewrites.rows[0], t.name).toEqual({ rows: ROWS, once: ROWS });
      const { rows } = await db.current.pool.query<{ k: string; email: string; v: string | null }>(
        `SELECT ${t.keyText.replaceAll('NEW.', 't.')} AS k, t.email, k.key_id AS v
           FROM ${t.name} t LEFT JOIN pgrekey.keys k ON k.version = t.email_key_version`,
      );
      expect(rows).toHaveLength(ROWS);
      for (const row of rows) {
        const decrypted = codec.decrypt(row.email);
        expect({ k: row.k, plaintext: decrypted.plaintext, keyId: decrypted.keyId, version: row.v }).toEqual({
          k: row.k,
          plaintext: plaintextOf(row.k),
          keyId: 'new',
          version: 'new',
        });
      }
    }
  }, 240_000);
});
