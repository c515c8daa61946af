/**
 * `keys retire` and `keys list` racing an application's migration of a target
 * table. Both count the target's values by key version (keys retire under the
 * registry lock). A migration holding the table's lock that then renames it,
 * or needs the registry (dropping the table drops its key-version foreign
 * keys, a deadlock), is another session's doing: the command says what
 * happened and what to do (exit 2 or 69), never "internal error" (exit 70),
 * and retires nothing.
 */
import type pg from 'pg';
import { expect, it } from 'vitest';
import { waitForLockWait } from '../helpers/database.js';
import { openRetireGate, startCli, type RotationWorkspace, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

/** Runs `args` while a "migration" holds people's lock; once the command waits for it, runs `ddl` there and commits. Returns the command's result. */
async function duringMigration(pool: pg.Pool, ws: RotationWorkspace, args: string[], ddl: string) {
  const migration = await pool.connect();
  try {
    // Its deadlock check waits longest, so a deadlock's victim is pg-rekey's command.
    await migration.query(`SET deadlock_timeout = '30s'`);
    await migration.query('BEGIN');
    await migration.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
    const cli = await startCli(ws, args);
    await waitForLockWait(pool, '%people%', { until: cli.done });
    // Committed as soon as it is done: the command may be waiting for it.
    const migrated = migration.query(ddl).then(() => migration.query('COMMIT'));
    const result = await cli.done;
    await migrated;
    return result;
  } finally {
    await migration.query('ROLLBACK').catch(() => undefined);
    migration.release();
  }
}

async function stateOfOld(pool: pg.Pool) {
  return (await pool.query(`SELECT state FROM pgrekey.keys WHERE key_id = 'old'`)).rows;
}

it('keys retire chosen as the deadlock victim exits 69 saying to run it again, and retires nothing', async () => {
  const { db, ws } = await fresh('retire_deadlock', 300);
  await openRetireGate(ws);
  // The gate waits for people while it holds the registry; the DROP then needs the registry.
  const result = await duringMigration(db.pool, ws, ['keys', 'retire', 'old'], 'DROP TABLE people');
  expect({ code: result.code, stderr: result.stderr }).toMatchObject({
    code: 69,
    stderr: expect.stringMatching(/\(SQLSTATE 40P01\).*another session.*run the command again/is),
  });
  expect(result.stderr).not.toMatch(/internal error/);
  expect(await stateOfOld(db.pool)).toEqual([{ state: 'active' }]);
}, 120_000);

it('a target renamed while keys retire counts it: exit 2 naming the table, nothing retired; keys list shows it uncounted', async () => {
  const { db, ws } = await fresh('retire_renamed', 300);
  await openRetireGate(ws);
  const retire = await duringMigration(db.pool, ws, ['keys', 'retire', 'old'], 'ALTER TABLE people RENAME TO people_renamed');
  expect({ code: retire.code, stderr: retire.stderr }).toMatchObject({
    code: 2,
    stderr: expect.stringMatching(/public\.people changed while its values were counted by key: .*\(SQLSTATE 42P01\).*no key was retired/s),
  });
  expect(await stateOfOld(db.pool)).toEqual([{ state: 'active' }]);

  await db.pool.query('ALTER TABLE people_renamed RENAME TO people');
  const list = await duringMigration(db.pool, ws, ['keys', 'list', '--json'], 'ALTER TABLE people RENAME TO people_renamed');
  expect({ code: list.code, stderr: list.stderr }).toMatchObject({ code: 0 });
  expect(JSON.stringify(JSON.parse(list.stdout))).toMatch(/public\.people changed while its values were counted by key/);
}, 120_000);
