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
type Cli = Awaited<ReturnType<typeof startCli>>;

/**
 * Starts `clis` while another session holds the registry lock, and lets it go
 * once every one of them waits for it; `beforeCommit` runs in the lock
 * holder's transaction (another host's registration) just before it commits.
 */
async function startWhileRegistryLocked(
  db: { url: string; pool: pg.Pool },
  clis: (() => Promise<Cli>)[],
  beforeCommit?: (holder: pg.Client) => Promise<unknown>,
): Promise<Cli[]> {
  const holder = new pg.Client({ connectionString: db.url });
  await holder.connect();
  const started: Cli[] = [];
  try {
    await holder.query('BEGIN');
    await holder.query('LOCK TABLE pgrekey.keys IN SHARE ROW EXCLUSIVE MODE');
    for (const start of clis) started.push(await start());
    await waitForLockWait(db.pool, '%LOCK TABLE "pgrekey".keys%', { sessions: clis.length });
    await beforeCommit?.(holder);
    await holder.query('COMMIT');
  } finally {
    await holder.end();
  }
  return started;
}

const addRuns = async (pool: pg.Pool) =>
  (await pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'add' AND target_key = 'old'`)).rows[0].n as number;

it('a wrong secret is refused even when the right one is registered while the command waits for the registry', async () => {
  const { db, ws } = await fresh('register_race', 20);
  // Another host registers "old" with the right secret; this one was deployed with a wrong one.
  const wrong = generateKey('django-fernet-v1');
  const [add] = await startWhileRegistryLocked(
    db,
    [() => startCli({ ...ws, env: { ...ws.env, SECRET_KEY_OLD: wrong } }, ['keys', 'add', 'old'])],
    (holder) => holder.query(`INSERT INTO pgrekey.keys (key_id, fingerprint) VALUES ('old', $1)`, [fingerprintSecret(OLD_SECRET)]),
  );
  const added = await add!.done;
  expect(added.code, added.stdout + added.stderr).toBe(2);
  expect(added.stderr).toContain('key old does not match the registered key old');
  expect(added.stdout + added.stderr).not.toContain(wrong);
  expect(await addRuns(db.pool)).toBe(0);
});

it('of two hosts adding the same key at once, one registers it and the other says it was already registered', async () => {
  const { db, ws } = await fresh('add_race', 20);
  // Both read the registry before either registers.
  const adds = await startWhileRegistryLocked(db, [1, 2].map(() => () => startCli(ws, ['keys', 'add', 'old', '--json'])));
  const results = [];
  for (const add of adds) {
    const r = await add.done;
    expect(r.code, r.stderr).toBe(0);
    results.push(JSON.parse(r.stdout).added as boolean);
  }
  expect(results.sort()).toEqual([false, true]);
  expect(await addRuns(db.pool)).toBe(1);
});
