/**
 * Registering a key while another process does: the decision is taken under
 * the registry lock, so a wrong secret is refused even when the right one was
 * registered meanwhile, and of two hosts adding the same key only the one that
 * registered it says so.
 */
import pg from 'pg';
import { expect, it } from 'vitest';
import { fingerprintSecret } from '../../src/crypto/fingerprint.js';
import { generateKey } from '../../src/crypto/generateKey.js';
import { waitForLockWait } from '../helpers/database.js';
import { expectExit, OLD_SECRET, startCli, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('a wrong secret is refused even when the right one is registered while the command waits for the registry', async () => {
  const { db, ws } = await fresh('register_race', 20);
  // Another host registers "old" with the right secret; this one was deployed with a wrong one.
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  let add: Awaited<ReturnType<typeof startCli>> | undefined;
  const wrong = generateKey('django-fernet-v1');
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE pgrekey.keys IN SHARE ROW EXCLUSIVE MODE');
    add = await startCli({ ...ws, env: { ...ws.env, SECRET_KEY_OLD: wrong } }, ['keys', 'add', 'old']);
    await waitForLockWait(db.pool, '%LOCK TABLE "pgrekey".keys%');
    await blocker.query(`INSERT INTO pgrekey.keys (key_id, fingerprint) VALUES ('old', $1)`, [fingerprintSecret(OLD_SECRET)]);
    await blocker.query('COMMIT');
  } finally {
    await blocker.end();
  }
  const added = await add!.done;
  expect(added.code, added.stdout + added.stderr).toBe(2);
  expect(added.stderr).toContain('key old does not match the registered key old');
  expect(added.stdout + added.stderr).not.toContain(wrong);
  const runs = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'add' AND target_key = 'old'`);
  expect(runs.rows).toEqual([{ n: 0 }]);
});

it('of two hosts adding the same key at once, one registers it and the other says it was already registered', async () => {
  const { db, ws } = await fresh('add_race', 20);
  const blocker = new pg.Client({ connectionString: db.url });
  await blocker.connect();
  const adds: Awaited<ReturnType<typeof startCli>>[] = [];
  try {
    // Both read the registry before either registers: hold its lock until both wait for it.
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE pgrekey.keys IN SHARE ROW EXCLUSIVE MODE');
    for (let i = 0; i < 2; i++) adds.push(await startCli(ws, ['keys', 'add', 'old', '--json']));
    await waitForLockWait(db.pool, '%LOCK TABLE "pgrekey".keys%', { sessions: 2 });
    await blocker.query('COMMIT');
  } finally {
    await blocker.end();
  }
  const results = [];
  for (const add of adds) {
    const r = await add.done;
    expect(r.code, r.stderr).toBe(0);
    results.push(JSON.parse(r.stdout).added as boolean);
  }
  expect(results.sort()).toEqual([false, true]);
  const runs = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'add' AND target_key = 'old'`);
  expect(runs.rows).toEqual([{ n: 1 }]);
});
