/**
 * Legacy values (issue 5 §4) and the emergency rollback of an open run: values
 * stored in plaintext or in the keyless ENC_V1 format are reported and left
 * alone unless --encrypt-legacy; --abandon-open-run lets a rollback replace an
 * unfinished rotation to a wrong key.
 */
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('legacy');
let ws: RotationWorkspace;
const ROWS = 2000;
// What the application's old code wrote: url-safe base64 (padded) of zlib-compressed UTF-8.
const encV1 = (text: string) => `ENC_V1:${deflateSync(Buffer.from(text, 'utf8')).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  await db.current.pool.query(`UPDATE people SET email = 'plain.alice@example.com' WHERE id = 3`);
  await db.current.pool.query(`UPDATE people SET email = $1 WHERE id = 4`, [encV1('legacy.bob@example.com')]);
  await db.current.pool.query(`UPDATE people SET mobno = $1 WHERE id = 5`, [encV1('+15550005555')]);
});
afterAll(() => ws?.cleanup());

describe('legacy values', () => {
  it('without --encrypt-legacy: reported as plaintext / legacy, untouched, exit 1', async () => {
    const result = await ws.run(['rotate', '--json']);
    expectExit(result, 1);
    const failures = await db.current.pool.query(
      `SELECT row_key->>'id' AS id, column_name AS column, reason FROM pgrekey.failures ORDER BY 1, 2`,
    );
    expect(failures.rows).toEqual([
      { id: '3', column: 'email', reason: 'plaintext' },
      { id: '4', column: 'email', reason: 'legacy' },
      { id: '5', column: 'mobno', reason: 'legacy' },
    ]);
    const row3 = await db.current.pool.query(`SELECT email FROM people WHERE id = 3`);
    expect(row3.rows[0].email).toBe('plain.alice@example.com');
    expect(result.stdout + result.stderr).not.toContain('alice');
  });

  it('with --encrypt-legacy: encrypts them under the target key and records how many', async () => {
    const result = await ws.run(['rotate', '--encrypt-legacy', '--json']);
    expectExit(result, 0);
    const summary = JSON.parse(result.stdout);
    expect(summary.bySource['public.people']).toEqual({ email: { plaintext: 1, legacy: 1 }, mobno: { legacy: 1 } });
    const codec = await bothKeysCodec();
    const { rows } = await db.current.pool.query(`SELECT id, email, mobno FROM people WHERE id IN (3, 4, 5) ORDER BY id`);
    expect(codec.decrypt(rows[0].email)).toMatchObject({ plaintext: 'plain.alice@example.com', keyId: 'new' });
    expect(codec.decrypt(rows[1].email)).toMatchObject({ plaintext: 'legacy.bob@example.com', keyId: 'new' });
    expect(codec.decrypt(rows[2].mobno)).toMatchObject({ plaintext: '+15550005555', keyId: 'new' });
  });
});

describe('emergency rollback of an open run', () => {
  it('a conflicting run is refused (exit 4) unless --abandon-open-run replaces it', async () => {
    // Put everything back under the old key, then leave a rotation to "new" unfinished.
    expectExit(await ws.run(['rotate', '--to', 'old']), 0);
    const stopped = await ws.run(['rotate', '--batch-size', '50', '--max-rate', '500', '--max-duration', '1s']);
    expectExit(stopped, 75);
    const refused = await ws.run(['rotate', '--to', 'old']);
    expectExit(refused, 4);
    expect(refused.stderr).toMatch(/is unfinished — finish it first .* or abandon it with --abandon-open-run/);
    // Nor is it joined by a run to the same key over fewer columns: that run would close it with mobno left undone.
    const narrower = await ws.run(['rotate', '--target', 'people.email']);
    expectExit(narrower, 4);
    expect(narrower.stderr).toMatch(/is unfinished — finish it first with "pg-rekey rotate --to new" and the same targets/);
    const doneBefore = (
      await db.current.pool.query(
        `SELECT sum(g.rows_examined)::int AS examined, sum(g.rows_changed)::int AS changed
           FROM pgrekey.ranges g JOIN pgrekey.runs r ON r.id = g.run_id WHERE r.kind = 'rotate' AND r.status = 'running'`,
      )
    ).rows[0];
    expect(doneBefore.changed).toBeGreaterThan(0);
    const rollback = await ws.run(['rotate', '--to', 'old', '--abandon-open-run', '--reason', 'new key never reached the app hosts', '--json']);
    expectExit(rollback, 0);
    const runs = await db.current.pool.query(
      `SELECT target_key, status, summary->>'abandonReason' AS why, rows_examined::int AS examined, rows_changed::int AS changed
         FROM pgrekey.runs WHERE kind = 'rotate' ORDER BY id DESC LIMIT 2`,
    );
    expect(runs.rows[1]).toEqual({ target_key: 'new', status: 'aborted', why: 'new key never reached the app hosts', ...doneBefore });
    expect(runs.rows[0]).toMatchObject({ target_key: 'old', status: 'succeeded', why: null });
    // Every value decrypts under the old key again, whatever the abandoned run had done.
    const codec = await bothKeysCodec();
    const { rows } = await db.current.pool.query<{ email: string; mobno: string | null }>(`SELECT email, mobno FROM people`);
    const keys = new Set(rows.flatMap((r) => [r.email, r.mobno].filter((v) => v !== null).map((v) => codec.decrypt(v).keyId)));
    expect([...keys]).toEqual(['old']);
    const stale = await db.current.pool.query(
      `SELECT count(*)::int AS n FROM people p JOIN pgrekey.keys k ON k.key_id = 'old'
        WHERE p.email_key_version IS DISTINCT FROM k.version OR (p.mobno IS NOT NULL AND p.mobno_key_version IS DISTINCT FROM k.version)`,
    );
    expect(stale.rows[0].n).toBe(0);
  });
});
