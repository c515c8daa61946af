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
    // The summary does not call them undecryptable: they are not encrypted at all.
    const human = await ws.run(['rotate']);
    expectExit(human, 1);
    expect(human.stdout).toMatch(/Rotation finished with 3 value\(s\) that could not be rotated — see "pg-rekey status --run \d+" for each reason\./);
    expect(human.stdout).not.toContain('could not be decrypted');
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
    expect(narrower.stderr).toContain('is unfinished — finish it first with "pg-rekey rotate --to new --target public.people.email --target public.people.mobno"');
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

describe('a process joining an open run with other value options', () => {
  it('is refused (exit 4) naming the difference; the run records what every process did', async () => {
    // The legacy values of the tests above are cleared; one plaintext value waits near the end of the table.
    await db.current.pool.query(`UPDATE people SET email = NULL WHERE id IN (3, 4)`);
    await db.current.pool.query(`UPDATE people SET mobno = NULL WHERE id = 5`);
    await db.current.pool.query(`UPDATE people SET email = 'plain.carol@example.com' WHERE id = 1990`);
    const stopped = await ws.run(['rotate', '--batch-size', '50', '--max-rate', '500', '--max-duration', '1s']);
    expectExit(stopped, 75);
    const open = (await db.current.pool.query(`SELECT id::int AS id FROM pgrekey.runs WHERE kind = 'rotate' AND status = 'running'`)).rows[0].id;

    const legacy = await ws.run(['rotate', '--encrypt-legacy']);
    expectExit(legacy, 4);
    expect(legacy.stderr).toContain(
      `rotation run ${open} is unfinished and it was started without --encrypt-legacy, this rotate runs with --encrypt-legacy — ` +
        'every process of a run must treat values alike. Join it with "pg-rekey rotate --to new", or let it finish and then run your rotate again',
    );
    const abort = await ws.run(['rotate', '--on-error', 'abort']);
    expectExit(abort, 4);
    expect(abort.stderr).toContain('it was started with --on-error continue, this rotate runs with --on-error abort');
    const row = await db.current.pool.query(`SELECT email, email_key_version FROM people WHERE id = 1990`);
    expect(row.rows).toEqual([{ email: 'plain.carol@example.com', email_key_version: null }]);

    // Joined with the same options, the run finishes as recorded: the plaintext value reported, not encrypted.
    const joined = await ws.run(['rotate', '--json']);
    expectExit(joined, 1);
    expect(JSON.parse(joined.stdout)).toMatchObject({ runId: open, status: 'failed', failed: 1 });
    const run = await db.current.pool.query(`SELECT options->'encryptLegacy' AS legacy, summary->'bySource' AS "bySource" FROM pgrekey.runs WHERE id = $1`, [open]);
    expect(run.rows[0].legacy).toBe(false);
    expect(run.rows[0].bySource['public.people'].email).not.toHaveProperty('plaintext');
    // Then a run of its own encrypts it.
    const own = await ws.run(['rotate', '--encrypt-legacy', '--json']);
    expectExit(own, 0);
    expect(JSON.parse(own.stdout).bySource['public.people']).toEqual({ email: { plaintext: 1 } });
  });

  it('a stopped run started with --encrypt-legacy is resumed by the command that status and the summary name', async () => {
    expectExit(await ws.run(['rotate', '--to', 'old']), 0);
    await db.current.pool.query(`UPDATE people SET email = 'plain.dave@example.com' WHERE id = 1995`);
    const stopped = await ws.run(['rotate', '--encrypt-legacy', '--batch-size', '50', '--max-rate', '500', '--max-duration', '1s']);
    expectExit(stopped, 75);
    const resume = 'pg-rekey rotate --to new --encrypt-legacy';
    expect(stopped.stdout).toContain(`Stopped early at a batch boundary; run "${resume}" again to continue.`);
    const status = JSON.parse((await ws.run(['status', '--json'])).stdout);
    expect(status.note).toBe(`stopped: no worker holds a lease — run "${resume}" to resume`);
    const refused = await ws.run(['rotate', '--to', 'old']);
    expectExit(refused, 4);
    expect(refused.stderr).toContain(`finish it first with "${resume}"`);
    expectExit(await ws.run(resume.split(' ').slice(1)), 0);
  });
});
