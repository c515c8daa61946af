/**
 * No key, plaintext or old ciphertext reaches the database as a query
 * parameter. The CLI runs in this process (the built dist/, as `pg-rekey`
 * runs it) with pg's Client.query wrapped to record every parameter of every
 * statement pg-rekey sends — pool queries, transactions, cursors — through a
 * rotation with bad rows (failures recorded) and an application write that
 * makes rows lose the compare-and-swap (their re-examination sends digests),
 * then a verify with --fix-versions. The new ciphertexts are sent, as they must
 * be to be written; nothing else value-bearing is.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, NEW_SECRET, OLD_SECRET, plaintextsOf, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('nosecrets');
let ws: RotationWorkspace;
const ROWS = 3000;

/** Every parameter value sent, flattened to strings. */
const sent: string[] = [];
const originalQuery = pg.Client.prototype.query;
/** Runs once, just before the first compare-and-swap UPDATE is sent (the "application" writes then). */
let beforeFirstSwap: (() => Promise<void>) | undefined;

function record(values: unknown): void {
  if (values === null || values === undefined) return;
  if (Array.isArray(values)) for (const v of values) record(v);
  else sent.push(values instanceof Buffer ? values.toString('utf8') : String(values));
}

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  // Bad rows: a plaintext email and a corrupted one (their failures are recorded by row key).
  await db.current.pool.query(`UPDATE people SET email = 'plain-17@example.com' WHERE id = 17`);
  await db.current.pool.query(`UPDATE people SET email = left(email, 60) WHERE id = 18`);
  pg.Client.prototype.query = function (this: pg.Client, config: unknown, values?: unknown, callback?: unknown) {
    const text = typeof config === 'string' ? config : (config as { text?: string }).text ?? '';
    record(typeof config === 'object' && config !== null && 'values' in config ? (config as { values: unknown }).values : values);
    if (beforeFirstSwap && /^\s*UPDATE .* FROM unnest/s.test(text)) {
      const run = beforeFirstSwap;
      beforeFirstSwap = undefined;
      return run().then(() => (originalQuery as (...a: unknown[]) => unknown).call(this, config, values, callback));
    }
    return (originalQuery as (...a: unknown[]) => unknown).call(this, config, values, callback);
  } as typeof pg.Client.prototype.query;
}, 120_000);

afterAll(async () => {
  pg.Client.prototype.query = originalQuery;
  await ws?.cleanup();
});

/** Runs the built CLI in this process, with the workspace's config and secrets. */
async function cliInProcess(args: string[]): Promise<number> {
  const { runCli } = (await import(pathToFileURL(path.join(REPO_ROOT, 'dist/src/cli/main.js')).href)) as { runCli(argv: string[]): Promise<number> };
  Object.assign(process.env, ws.env);
  // Its JSON result goes to stdout: keep it out of the test report.
  const write = process.stdout.write;
  process.stdout.write = (() => true) as typeof process.stdout.write;
  try {
    return await runCli([...args, '--config', path.join(ws.dir, 'pg-rekey.config.json'), '--database-url', db.current.url]);
  } finally {
    process.stdout.write = write;
  }
}

describe('what pg-rekey sends to the database', () => {
  it('never a secret, a plaintext or an old ciphertext, through rotate, its re-examinations and verify --fix-versions', async () => {
    const { rows: before } = await db.current.pool.query<{ id: string; email: string | null; mobno: string | null }>(
      `SELECT id, email, mobno FROM people ORDER BY id`,
    );
    const oldCiphertexts = before.flatMap((r) => [r.email, r.mobno]).filter((v): v is string => v !== null && v.length > 30);
    const plaintexts = before.flatMap((r) => Object.values(plaintextsOf(Number(r.id)))).filter((v): v is string => v !== null);
    plaintexts.push('plain-17@example.com');

    // The "application" renames the first rows of a batch between pg-rekey's read and its write.
    let renamed = 0;
    beforeFirstSwap = async () => {
      const app = new pg.Client({ connectionString: db.current.url });
      await app.connect();
      try {
        // The original query: this write is the application's, not pg-rekey's, and is not recorded.
        const query = originalQuery as unknown as (this: pg.Client, text: string) => Promise<pg.QueryResult>;
        renamed = (await query.call(app, `UPDATE people SET name = name || ' (renamed)' WHERE id <= 20`)).rowCount ?? 0;
      } finally {
        await app.end();
      }
    };
    expect(await cliInProcess(['rotate', '--batch-size', '500', '--json'])).toBe(1); // the two bad rows
    expect(renamed).toBe(20);
    // The renamed rows lost the first compare-and-swap and were re-examined by digest.
    expect(sent.some((v) => /^[0-9a-f]{64}$/.test(v))).toBe(true);
    // Break a key-version hint so verify --fix-versions has something to send.
    await db.current.pool.query(`UPDATE people SET mobno_key_version = NULL WHERE id = 30`);
    expect(await cliInProcess(['verify', '--fix-versions', '--json'])).toBe(1); // still the two bad rows

    // The re-examination rotated the renamed rows.
    const codec = await bothKeysCodec();
    const { rows: renamedRows } = await db.current.pool.query<{ email: string }>(`SELECT email FROM people WHERE id <= 20 AND id NOT IN (17, 18)`);
    for (const r of renamedRows) expect(codec.decrypt(r.email).keyId).toBe('new');

    // The check itself: no parameter holds a secret, a plaintext or an old ciphertext.
    const forbidden = [OLD_SECRET, NEW_SECRET, ...plaintexts, ...oldCiphertexts];
    expect(sent.length).toBeGreaterThan(100);
    const leaks = sent.filter((value) => forbidden.some((f) => value.includes(f)));
    expect(leaks.map((v) => v.slice(0, 40))).toEqual([]);
  }, 120_000);
});
