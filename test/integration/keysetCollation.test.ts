/**
 * Keyset keys under collations other than the database's: what a unique index
 * guarantees must be what the keyset compares. A text key whose column has a
 * nondeterministic (case-insensitive) collation but whose unique index is
 * bytewise lets 'h1' and 'H1' coexist while the column's own = and > treat them
 * as one key: paging would skip one and the compare-and-swap UPDATE, matching
 * by key, would write one row's ciphertext into the other. And verify's
 * sample, which compares two keys with no column in the expression, must still
 * compare them in the key column's collation.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, createWorkspace, expectExit, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('keyset_collation');
let ws: RotationWorkspace;

beforeAll(async () => {
  await db.current.pool.query(`CREATE COLLATION case_insensitive (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`);
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
}, 60_000);

afterAll(async () => {
  await ws?.cleanup();
});

it('a unique index that does not compare like its column (nondeterministic collation) is not a keyset key', async () => {
  const codec = await bothKeysCodec();
  const handles = Array.from({ length: 20 }, (_, i) => `${i % 2 === 0 ? 'h' : 'H'}${Math.floor(i / 2)}`);
  await db.current.pool.query(`
    CREATE TABLE handles (handle text COLLATE case_insensitive NOT NULL, email text);
    CREATE UNIQUE INDEX handles_handle ON handles (handle COLLATE "C");`);
  await db.current.pool.query(`INSERT INTO handles SELECT h, e FROM unnest($1::text[], $2::text[]) AS u(h, e)`, [
    handles,
    handles.map((h) => codec.encrypt(`${h}@example.com`, { keyId: 'old' })),
  ]);
  const added = await ws.run(['target', 'add', '--table', 'handles', '--columns', 'email', '--format', 'django-fernet-v1']);
  expectExit(added, 2);
  expect(added.stderr).toContain('has no primary key or unique index on NOT NULL columns');
  const named = await ws.run(['target', 'add', '--table', 'handles', '--columns', 'email', '--key', 'handle', '--format', 'django-fernet-v1']);
  expectExit(named, 2);
  expect(named.stderr).toContain('(handle) is not a unique key of public.handles');
});

it('a unique index in the column\'s own nondeterministic collation is a keyset key, and every row keeps its own value', async () => {
  const codec = await bothKeysCodec();
  const handles = Array.from({ length: 40 }, (_, i) => `${i % 2 === 0 ? 'k' : 'K'}${i}`);
  await db.current.pool.query(`
    CREATE TABLE members (handle text COLLATE case_insensitive NOT NULL, email text);
    CREATE UNIQUE INDEX members_handle ON members (handle);`);
  await db.current.pool.query(`INSERT INTO members SELECT h, e FROM unnest($1::text[], $2::text[]) AS u(h, e)`, [
    handles,
    handles.map((h) => codec.encrypt(`${h}@example.com`, { keyId: 'old' })),
  ]);
  expectExit(await ws.run(['target', 'add', '--table', 'members', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate', '--batch-size', '3']), 0);
  const { rows } = await db.current.pool.query<{ handle: string; email: string }>(`SELECT handle, email FROM members`);
  expect(rows.map((r) => ({ handle: r.handle, ...codec.decrypt(r.email) }))).toEqual(
    expect.arrayContaining(handles.map((h) => expect.objectContaining({ handle: h, plaintext: `${h}@example.com`, keyId: 'new' }))),
  );
  expect(rows).toHaveLength(handles.length);
});

it('verify --sample clips overlapping windows in the key column\'s collation, so no row is checked twice', async () => {
  const codec = await bothKeysCodec();
  // Under ICU "en" 'a…' < 'B…' < 'c…'; under the database's C order every upper-case key comes first.
  const letters = 'abcdefghijklmnopqrstuvwxyz';
  const handles = Array.from({ length: 3000 }, (_, i) => {
    const letter = letters[i % 26]!;
    return `${i % 2 === 0 ? letter : letter.toUpperCase()}${String(i).padStart(5, '0')}`;
  });
  const value = codec.encrypt('same@example.com', { keyId: 'old' });
  await db.current.pool.query(`CREATE TABLE tags (handle text COLLATE "en-x-icu" PRIMARY KEY, email text)`);
  await db.current.pool.query(`INSERT INTO tags SELECT h, $2 FROM unnest($1::text[]) AS h`, [handles, value]);
  await db.current.pool.query('ANALYZE tags');
  expectExit(await ws.run(['target', 'add', '--table', 'tags', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);

  const verify = await ws.run(['verify', '--target', 'tags', '--sample', '2000', '--seed', '7', '--json']);
  expectExit(verify, 0);
  const sample = JSON.parse(verify.stdout).samples['public.tags'];
  expect(sample.method).toBe('keyset-windows');
  // Each window read `rows` consecutive keys ending at `last`: list them all, in the column's order.
  const covered = await db.current.pool.query<{ handle: string }>(
    `SELECT x.handle FROM jsonb_to_recordset($1::jsonb) AS w(last jsonb, rows int),
            LATERAL (SELECT handle FROM tags WHERE handle <= w.last->>0 ORDER BY handle DESC LIMIT w.rows) AS x`,
    [JSON.stringify(sample.windows)],
  );
  expect(covered.rows).toHaveLength(sample.rowsChecked);
  expect(new Set(covered.rows.map((r) => r.handle)).size).toBe(sample.rowsChecked);
});
