/**
 * The baselines pg-rekey is compared with (DESIGN §7): the manual procedure's
 * loop, the crypto alone, and a single-statement UPDATE. Each returns the
 * rows it handled and how long it took.
 */
import pg from 'pg';
import { dualKeyCodec, withDb } from './workload.js';

/** A measured figure: rows handled in `ms` milliseconds. */
export interface Timing {
  rows: number;
  ms: number;
}

const PAGE = 1000;

/**
 * (a) The manual procedure as the Django management command runs it: pages of
 * 1,000 by `ORDER BY id OFFSET n LIMIT 1000`, each page in a transaction, and
 * per row a decrypt + encrypt of both columns in the application followed by a
 * `save()` — an UPDATE of every column of that row by primary key.
 */
export async function measureManualLoop(url: string): Promise<Timing> {
  const codec = await dualKeyCodec();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const started = performance.now();
    let rows = 0;
    for (let offset = 0; ; offset += PAGE) {
      await client.query('BEGIN');
      const page = await client.query<{ id: string; name: string; email: string | null; mobno: string | null }>(
        'SELECT id, name, email, mobno FROM people ORDER BY id OFFSET $1 LIMIT $2',
        [offset, PAGE],
      );
      for (const r of page.rows) {
        const email = r.email === null ? null : codec.encrypt(codec.decrypt(r.email).plaintext, { keyId: 'new' });
        const mobno = r.mobno === null ? null : codec.encrypt(codec.decrypt(r.mobno).plaintext, { keyId: 'new' });
        await client.query('UPDATE people SET name = $2, email = $3, mobno = $4 WHERE id = $1', [r.id, r.name, email, mobno]);
      }
      await client.query('COMMIT');
      rows += page.rows.length;
      if (page.rows.length < PAGE) break;
    }
    return { rows, ms: performance.now() - started };
  } finally {
    await client.end();
  }
}

/**
 * (b) The crypto alone on one core: re-encrypt (decrypt with the old key,
 * encrypt with the new, Fernet timestamp kept) both columns of every row, with
 * the values already in memory — no database, no digests, no arrays.
 */
export async function measureCryptoOnly(url: string): Promise<Timing> {
  const codec = await dualKeyCodec();
  const values = await withDb(url, async (pool) =>
    (await pool.query<{ email: string | null; mobno: string | null }>('SELECT email, mobno FROM people ORDER BY id')).rows,
  );
  const started = performance.now();
  let sink = 0;
  for (const r of values) {
    if (r.email !== null) sink += codec.reencrypt(r.email, 'new').stored.length;
    if (r.mobno !== null) sink += codec.reencrypt(r.mobno, 'new').stored.length;
  }
  const ms = performance.now() - started;
  if (sink === 0 && values.length > 0) throw new Error('crypto produced nothing');
  return { rows: values.length, ms };
}

/**
 * (c) The database's own ceiling for this rewrite: one UPDATE that gives every
 * row new email and mobno values of the same size (a character swapped in
 * SQL, no crypto), so it writes the same number of new row versions, index
 * entries and WAL as a rotation, in one statement and one commit.
 */
export async function measureSingleUpdate(url: string): Promise<Timing> {
  return withDb(url, async (pool) => {
    const started = performance.now();
    const result = await pool.query(
      `UPDATE people SET email = translate(email, 'A', 'B'), mobno = translate(mobno, 'A', 'B')`,
    );
    return { rows: result.rowCount ?? 0, ms: performance.now() - started };
  });
}
