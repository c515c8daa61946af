/**
 * A new value longer than its varchar(n) column allows (here: plaintext that
 * --encrypt-legacy encrypts) would make the server reject its whole batch, and
 * every re-run would stop at the same batch. Such a value is reported as
 * `too-long` by row key, left as it is, and the rest of the table rotates.
 * A batch the table itself rejects (here an application trigger) is not a
 * pg-rekey bug: exit 69 with what to do, and the next run resumes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, createWorkspace, expectExit, seedPeople, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('column_length');
let ws: RotationWorkspace;
const ROWS = 600;
// 40 characters: fits varchar(146) as plaintext; encrypted (django-fernet-v1) it takes 198.
const LONG_PLAINTEXT = '+1 555 0100 ext. 1234 (front desk, 24h)!';

beforeAll(async () => {
  const pool = db.current.pool;
  await seedPeople(pool, ROWS);
  // Every seeded mobno ciphertext is 146 characters: the column is exactly wide enough for them.
  const widest = await pool.query<{ n: number }>(`SELECT max(length(mobno))::int AS n FROM people`);
  expect(widest.rows[0]!.n).toBe(146);
  await pool.query(`ALTER TABLE people ALTER COLUMN mobno TYPE varchar(146)`);
  await pool.query(`UPDATE people SET mobno = $1 WHERE id IN (8, 9)`, [LONG_PLAINTEXT]);
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
  expectExit(await ws.run(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
});

afterAll(() => ws?.cleanup());

describe('a new value too long for its column', () => {
  it('the dry run counts it as too-long (crypto inline here; on a thread below)', async () => {
    const result = await ws.run(['rotate', '--dry-run', '--encrypt-legacy', '--crypto-threads', '0', '--json']);
    expectExit(result, 1);
    const people = JSON.parse(result.stdout).targets[0];
    expect(people.failuresByReason).toEqual({ mobno: { 'too-long': 2 } });
  });

  it('a batch the table itself rejects (an application trigger) exits 69, rolled back; the next run resumes', async () => {
    await db.current.pool.query(`
      CREATE FUNCTION refuse_row_500() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        -- Part of a value, as application triggers do: it cannot be recognised and blanked.
        IF NEW.id = 500 THEN RAISE EXCEPTION 'row 500 is frozen by the application (email %…, was %)', substr(NEW.email, 11, 20), OLD.email; END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER refuse_row_500 BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION refuse_row_500();`);
    const refused = await ws.run(['rotate', '--encrypt-legacy', '--batch-size', '100', '--workers', '1']);
    expectExit(refused, 69);
    // The trigger's message quoted values: it is not shown; the function is named instead.
    // Booleans, so a failure cannot print (part of) a ciphertext from stderr.
    const names = 'the database rejected a batch of public.people: an error raised by PL/pgSQL function refuse_row_500() — its message is not shown';
    expect(refused.stderr.includes(names), 'names the function instead of quoting its message').toBe(true);
    expect(refused.stderr.includes('(SQLSTATE P0001)'), 'gives the SQLSTATE').toBe(true);
    expect(refused.stderr.includes('FERNET_V1:'), 'a value was printed').toBe(false);
    expect(refused.stderr.includes('frozen by the application'), "the trigger's message was printed").toBe(false);
    const row500 = await db.current.pool.query<{ email: string }>(`SELECT email FROM people WHERE id = 500`);
    expect(refused.stderr.includes(row500.rows[0]!.email.slice(10, 30)), 'part of a value was printed').toBe(false);
    expect(refused.stderr).toContain('run rotate again: it resumes from the last checkpoint');
    // The range was handed back: the next run need not wait for its lease to expire.
    const leased = await db.current.pool.query(`SELECT id FROM pgrekey.ranges WHERE status = 'running' AND lease_expires_at > now()`);
    expect(leased.rows).toEqual([]);
    // Its batch (rows 401–500) rolled back; the batches before it committed.
    const done = await db.current.pool.query<{ id: string }>(`SELECT id FROM people WHERE email_key_version IS NOT NULL ORDER BY id`);
    expect(done.rows.map((r) => Number(r.id))).toEqual(Array.from({ length: 400 }, (_, i) => i + 1));
    await db.current.pool.query(`DROP TRIGGER refuse_row_500 ON people`);
  });

  it('is reported by row key and left alone; the rest rotates; exit 1', async () => {
    const result = await ws.run(['rotate', '--encrypt-legacy', '--json']);
    expectExit(result, 1);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'failed', examined: ROWS, failed: 2 });
    const failures = await db.current.pool.query(`SELECT row_key->>'id' AS id, column_name AS column, reason FROM pgrekey.failures ORDER BY 1`);
    expect(failures.rows).toEqual([
      { id: '8', column: 'mobno', reason: 'too-long' },
      { id: '9', column: 'mobno', reason: 'too-long' },
    ]);
    expect(result.stdout + result.stderr).not.toContain('front desk');

    const codec = await bothKeysCodec();
    const { rows } = await db.current.pool.query<{ id: string; email: string; mobno: string | null; mobno_key_version: number | null }>(
      `SELECT id, email, mobno, mobno_key_version FROM people ORDER BY id`,
    );
    for (const row of rows) {
      expect(codec.decrypt(row.email).keyId, `email of ${row.id}`).toBe('new');
      if (row.id === '8' || row.id === '9') expect(row).toMatchObject({ mobno: LONG_PLAINTEXT, mobno_key_version: null });
      else if (row.mobno !== null) expect(codec.decrypt(row.mobno).keyId, `mobno of ${row.id}`).toBe('new');
    }
  });
});
