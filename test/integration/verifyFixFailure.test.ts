/**
 * A `verify --fix-versions` that fails part-way has already committed some
 * key-version repairs; its run records them, so the retire gate counts it as a
 * change (a rehearsal older than the repairs no longer opens the gate).
 */
import { expect, it } from 'vitest';
import { expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('records the repairs committed before the failure', async () => {
  const { db, ws } = await fresh('verify_fix_failure', 1000);
  expectExit(await ws.run(['rotate']), 0);
  // Every hint unknown (NULL is always allowed), then a trigger of the
  // application's that refuses the repair of row 800: the scan fails there.
  await db.pool.query(`
    UPDATE people SET email_key_version = NULL;
    CREATE FUNCTION refuse_800() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id = 800 AND NEW.email_key_version IS NOT NULL THEN RAISE EXCEPTION 'row 800 is frozen'; END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER refuse_800 BEFORE UPDATE ON people FOR EACH ROW EXECUTE FUNCTION refuse_800();`);
  const verify = await ws.run(['verify', '--fix-versions', '--chunk-rows', '100']);
  expect(verify.code).not.toBe(0);
  const repaired = await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
  expect(repaired.rows[0].n).toBeGreaterThan(0);
  const run = await db.pool.query(`SELECT status, rows_changed::int AS changed FROM pgrekey.runs WHERE kind = 'verify'`);
  expect(run.rows).toEqual([{ status: 'failed', changed: repaired.rows[0].n }]);
}, 120_000);
