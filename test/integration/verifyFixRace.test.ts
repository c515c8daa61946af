/**
 * `verify --fix-versions` repairs a hint only where the value is still the one
 * it read (compare-and-swap on a digest): an application write that lands
 * between the read and the repair keeps its unknown hint, so the next rotation
 * examines it. Staged exactly: the application's transaction holds the row
 * until verify's repair waits on it.
 */
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { useTestDatabase, waitForLockWait } from '../helpers/database.js';
import { bothKeysCodec, expectExit, OLD_SECRET, prepareRotation, startCli, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('verify_fix_race');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 100);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate']), 0);
});
afterAll(() => ws?.cleanup());

it('a value written after verify read it keeps its unknown hint, and the next rotation rewrites it', async () => {
  const pool = db.current.pool;
  // The application writes row 7 under the new key: its hint becomes unknown, for verify to repair.
  await pool.query(`UPDATE people SET email = $1 WHERE id = 7`, [(await bothKeysCodec()).encrypt('first@example.com')]);
  const oldHost = await createCodec({ format: 'django-fernet-v1', keys: [{ id: 'old', secret: 'env:OLD' }], env: { OLD: OLD_SECRET } });
  const app = new pg.Client({ connectionString: db.current.url });
  await app.connect();
  let verify: Awaited<ReturnType<typeof startCli>> | undefined;
  try {
    // A host still on the old key writes row 7 again, in a transaction still open when verify reads.
    await app.query('BEGIN');
    await app.query(`UPDATE people SET email = $1 WHERE id = 7`, [oldHost.encrypt('second@example.com')]);
    verify = await startCli(ws, ['verify', '--fix-versions', '--json']);
    await waitForLockWait(db.current.pool, '%UPDATE "public"."people" AS t SET%');
    await app.query('COMMIT');
  } finally {
    await app.end();
  }
  const verified = await verify!.done;
  expect(verified.code, verified.stderr).toBe(0);
  const email = JSON.parse(verified.stdout).columns.find((c: { column: string }) => c.column === 'email');
  expect(email.versions).toMatchObject({ unknown: 1, fixed: 0, fixLost: 1 });
  const hint = await pool.query(`SELECT email_key_version FROM people WHERE id = 7`);
  expect(hint.rows).toEqual([{ email_key_version: null }]);
  // Unknown, so examined: the value under the old key is rotated.
  const rotate = await ws.run(['rotate', '--json']);
  expectExit(rotate, 0);
  expect(JSON.parse(rotate.stdout).bySource['public.people'].email).toEqual({ old: 1 });
});
