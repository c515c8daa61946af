/**
 * What keeps `keys retire` from retiring a key a value still needs, once the
 * retire gate is open (rotated, and a full `verify --without old` passed):
 * every target column is counted, not only the first; the database's own
 * guard checks every key-version column; a reference alone refuses it, with
 * the counts; and a retired key is no longer used to read values.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { generateKey } from '../../src/crypto/generateKey.js';
import { asKeyVersionWriter, waitForLockWait } from '../helpers/database.js';
import { bothKeysCodec, expectExit, OLD_SECRET, openRetireGate, startCli, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

/** The codec of a host that was never given the new key. */
const oldKeyOnly = () => createCodec({ format: 'django-fernet-v1', keys: [{ id: 'old', secret: 'env:OLD' }], env: { OLD: OLD_SECRET } });

/** The reference workload rotated to "new", with a passed retirement rehearsal for "old": the gate is open. */
async function gateOpen(label: string) {
  const { db, ws } = await fresh(label, 100);
  await openRetireGate(ws);
  const oldState = async () => (await db.pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`)).rows[0].state as string;
  return { db, ws, oldState };
}

it('a value of the second target column written under the old key after the rehearsal refuses retire', async () => {
  const { db, ws, oldState } = await gateOpen('retire_second_column');
  // A host still on the old key writes one mobno (id 1's is not NULL); its hint is reset to unknown.
  await db.pool.query(`UPDATE people SET mobno = $1 WHERE id = 1`, [(await oldKeyOnly()).encrypt('+15550000001')]);
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  const out = JSON.parse(retire.stdout);
  expect(out).toMatchObject({ retired: false, referencing: [], unknown: [{ target: 'public.people', column: 'mobno', unknown: 1 }] });
  expect(await oldState()).toBe('active');
});

it('the database refuses to retire a key referenced by any key-version column, not only the first', async () => {
  const { db, oldState } = await gateOpen('retire_trigger_columns');
  const retireSql = `UPDATE pgrekey.keys SET state = 'retired', retired_at = now() WHERE key_id = 'old'`;
  const hintSql = (column: string, key: string) =>
    `UPDATE people SET ${column}_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = '${key}') WHERE id = 1`;
  for (const column of ['email', 'mobno']) {
    // One hint of this column names "old" (as a buggy writer could leave it); every other hint names "new".
    await asKeyVersionWriter(db.pool, hintSql(column, 'old'));
    await expect(db.pool.query(retireSql), column).rejects.toMatchObject({
      code: '23503',
      message: expect.stringContaining(`${column}_key_version`),
    });
    await asKeyVersionWriter(db.pool, hintSql(column, 'new'));
  }
  expect(await oldState()).toBe('active');
});

it('a hint naming the key refuses retire with exit 1 and the counts, recorded as a refused retire', async () => {
  const { db, ws, oldState } = await gateOpen('retire_referenced_only');
  await asKeyVersionWriter(db.pool, `UPDATE people SET email_key_version = (SELECT version FROM pgrekey.keys WHERE key_id = 'old') WHERE id = 4`);
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  expect(JSON.parse(retire.stdout)).toMatchObject({
    retired: false,
    referencing: [{ target: 'public.people', column: 'email', byKey: { old: 1 } }],
    unknown: [],
    gate: { satisfied: true },
  });
  const human = await ws.run(['keys', 'retire', 'old']);
  expectExit(human, 1);
  expect(human.stdout).toContain('public.people.email: 1 row(s) encrypted with old');
  const runs = await db.pool.query(`SELECT status, summary->'refused' AS refused FROM pgrekey.runs WHERE kind = 'retire' ORDER BY id`);
  expect(runs.rows).toEqual([
    { status: 'failed', refused: true },
    { status: 'failed', refused: true },
  ]);
  expect(await oldState()).toBe('active');
});

it('a retired key no longer reads values: a value under it fails verify and is left as it is by rotate', async () => {
  const { db, ws } = await gateOpen('retired_key_unused');
  expectExit(await ws.run(['keys', 'retire', 'old']), 0);
  // The config still lists "old" (as it usually does for a while); a host still on it writes row 2.
  const written = (await oldKeyOnly()).encrypt('late@example.com');
  await db.pool.query(`UPDATE people SET email = $1 WHERE id = 2`, [written]);
  const verify = await ws.run(['verify', '--json']);
  expectExit(verify, 1);
  const report = JSON.parse(verify.stdout);
  expect(report.findings).toEqual([expect.objectContaining({ column: 'email', rowKey: { id: '2' }, reason: 'no-key' })]);
  expect(report.columns.find((c: { column: string }) => c.column === 'email').byKey).toEqual({ new: 99 });
  expectExit(await ws.run(['rotate']), 1);
  const row = await db.pool.query(`SELECT email = $1 AS untouched, email_key_version FROM people WHERE id = 2`, [written]);
  expect(row.rows).toEqual([{ untouched: true, email_key_version: null }]);
});

it('a rotation that failed after the rehearsal closes the gate: it still rewrote rows', async () => {
  const { db, ws, oldState } = await gateOpen('retire_after_failed_rotation');
  // A host still on the old key writes row 8, and a value no key reads makes the next rotation fail
  // after rewriting row 8; row 6 is then deleted, so nothing but the gate refuses.
  await db.pool.query(`UPDATE people SET email = $1 WHERE id = 8`, [(await oldKeyOnly()).encrypt('late@example.com')]);
  await db.pool.query(`UPDATE people SET email = 'not-a-ciphertext@example.com' WHERE id = 6`);
  const rotate = await ws.run(['rotate', '--json']);
  expectExit(rotate, 1);
  const failed = JSON.parse(rotate.stdout);
  expect(failed).toMatchObject({ status: 'failed', failed: 1, bySource: { 'public.people': { email: { old: 1 } } } });
  await db.pool.query(`DELETE FROM people WHERE id = 6`);
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  expect(JSON.parse(retire.stdout)).toMatchObject({
    retired: false,
    referencing: [],
    unknown: [],
    gate: { satisfied: false, lastChange: { kind: 'rotate', runId: failed.runId } },
  });
  expect(await oldState()).toBe('active');
  // A rehearsal after it opens the gate again.
  expectExit(await ws.run(['verify', '--without', 'old']), 0);
  expectExit(await ws.run(['keys', 'retire', 'old']), 0);
});

it('a rehearsal whose scan began before a promotion does not count, even though it finished after it', async () => {
  const { db, ws, oldState } = await gateOpen('retire_rehearsal_overlaps_promotion');
  // A third key, to be promoted while the rehearsal is reading.
  const file = path.join(ws.dir, 'pg-rekey.config.json');
  const config = JSON.parse(await readFile(file, 'utf8'));
  await writeFile(file, JSON.stringify({ ...config, keys: [...config.keys, { id: 'next', secret: 'env:SECRET_KEY_NEXT' }] }));
  ws.env.SECRET_KEY_NEXT = generateKey('django-fernet-v1');
  expectExit(await ws.run(['keys', 'add', 'next']), 0);

  // A session holding people locked parks the rehearsal's first read (after its start was taken).
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  let verify: Awaited<ReturnType<typeof startCli>> | undefined;
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE public.people IN ACCESS EXCLUSIVE MODE');
    verify = await startCli(ws, ['verify', '--without', 'old']);
    await waitForLockWait(db.pool, '%FROM "public"."people" AS t%ORDER BY%');
    expectExit(await ws.run(['keys', 'promote', 'next']), 0);
    await blocker.query('COMMIT');
  } finally {
    await blocker.end();
  }
  const verified = await verify!.done;
  expect(verified.code, verified.stdout + verified.stderr).toBe(0);
  const order = await db.pool.query(
    `SELECT v.started_at < p.finished_at AND p.finished_at < v.finished_at AS overlapped
       FROM pgrekey.runs v, pgrekey.runs p
      WHERE v.id = (SELECT max(id) FROM pgrekey.runs WHERE kind = 'verify') AND p.kind = 'promote' AND p.target_key = 'next'`,
  );
  expect(order.rows).toEqual([{ overlapped: true }]);

  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 1);
  expect(JSON.parse(retire.stdout)).toMatchObject({ retired: false, referencing: [], unknown: [], gate: { satisfied: false, lastChange: { kind: 'promote' } } });
  expect(await oldState()).toBe('active');
  expectExit(await ws.run(['verify', '--without', 'old']), 0);
  expectExit(await ws.run(['keys', 'retire', 'old']), 0);
});

it('a rehearsal that repaired hints itself (verify --fix-versions --without old) still opens the gate', async () => {
  const { db, ws, oldState } = await gateOpen('retire_fix_rehearsal');
  // The application rewrites row 3 under the new key: its hint is unknown, so retire needs a repair first.
  await db.pool.query(`UPDATE people SET email = $1 WHERE id = 3`, [(await bothKeysCodec()).encrypt('x@example.com')]);
  const fix = await ws.run(['verify', '--fix-versions', '--without', 'old', '--json']);
  expectExit(fix, 0);
  expect(JSON.parse(fix.stdout).columns.find((c: { column: string }) => c.column === 'email').versions).toMatchObject({ fixed: 1 });
  const retire = await ws.run(['keys', 'retire', 'old', '--json']);
  expectExit(retire, 0);
  expect(JSON.parse(retire.stdout)).toMatchObject({ retired: true, gate: { verifyRunId: JSON.parse(fix.stdout).runId } });
  expect(await oldState()).toBe('retired');
});

