/**
 * Live safety and deploy-hook behaviour: an application writing while the
 * rotation runs loses no write; --max-duration and SIGTERM stop cleanly with
 * exit 75 and the next run finishes; a wrong secret stops everything, exit 2.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  bothKeysCodec,
  expectAllUnderKey,
  expectExit,
  plaintextsOf,
  startCli,
  useFreshRotations,
  waitForStderr,
} from '../helpers/rotationFixture.js';
import { waitForLockWait } from '../helpers/database.js';

const freshRotation = useFreshRotations();

describe('rotate with a concurrent application writer', () => {
  it('never loses a write made with the new or the old key, an insert or a delete', async () => {
    const ROWS = 20_000;
    const { db, ws } = await freshRotation('writer', ROWS);
    const codec = await bothKeysCodec();
    const lastWritten = new Map<number, string>();
    const cli = await startCli(ws, ['rotate', '--batch-size', '200', '--max-rate', '10000', '--json']);
    let running = true;
    void cli.done.then(() => (running = false));
    const deleted = new Set<number>();
    let nextId = ROWS + 1;
    let writes = 0;
    let renames = 0;
    while (running) {
      // Bursts of application-style single-row updates, half under each key.
      for (let i = 0; i < 20 && running; i++) {
        // An application also writes other columns: such a row loses the first
        // compare-and-swap (new row version) and must be rotated on re-examination.
        await db.pool.query(`UPDATE people SET name = 'renamed ' || $2 WHERE id = $1`, [1 + Math.floor(Math.random() * ROWS), renames++]);
        const id = 1 + Math.floor(Math.random() * ROWS);
        if (deleted.has(id)) continue;
        const plaintext = `writer-${id}-${writes}@example.com`;
        const keyId = writes % 2 === 0 ? 'old' : 'new';
        await db.pool.query('UPDATE people SET email = $1 WHERE id = $2', [codec.encrypt(plaintext, { keyId }), id]);
        lastWritten.set(id, plaintext);
        writes++;
      }
      // Now and then a row is deleted (it must stay gone) and one inserted under the old key.
      const victim = 1 + Math.floor(Math.random() * ROWS);
      await db.pool.query('DELETE FROM people WHERE id = $1', [victim]);
      deleted.add(victim);
      lastWritten.delete(victim);
      const inserted = nextId++;
      const plaintext = `inserted-${inserted}@example.com`;
      await db.pool.query(`INSERT INTO people (id, name, email) VALUES ($1, 'new', $2)`, [inserted, codec.encrypt(plaintext, { keyId: 'old' })]);
      lastWritten.set(inserted, plaintext);
      await sleep(5);
    }
    const result = await cli.done;
    expect(result.code, result.stderr).toBe(0);
    expect(writes).toBeGreaterThan(100);
    // Every row that lost a race was rotated when re-examined, none given up.
    expect(JSON.parse(result.stdout)).toMatchObject({ conflicted: 0 });
    // Rows the writer re-wrote with the old key behind the rotator need one more run.
    expectExit(await ws.run(['rotate']), 0);
    const { rows } = await db.pool.query<{ id: string; email: string; version: string | null }>(
      `SELECT p.id, p.email, k.key_id AS version FROM people p LEFT JOIN pgrekey.keys k ON k.version = p.email_key_version`,
    );
    expect(deleted.size).toBeGreaterThan(5);
    expect(rows).toHaveLength(ROWS - deleted.size + (nextId - ROWS - 1));
    expect(rows.filter((r) => deleted.has(Number(r.id)))).toEqual([]);
    for (const row of rows) {
      const id = Number(row.id);
      const decrypted = codec.decrypt(row.email);
      expect({ id, plaintext: decrypted.plaintext, keyId: decrypted.keyId, version: row.version }).toEqual({
        id,
        plaintext: lastWritten.get(id) ?? plaintextsOf(id).email,
        keyId: 'new',
        version: 'new',
      });
    }
  }, 240_000);
});

describe('stopping early', () => {
  it('--max-duration stops at a batch boundary with exit 75; the next run finishes', async () => {
    const ROWS = 10_000;
    const { db, ws } = await freshRotation('maxdur', ROWS);
    // 3 s counted from the process start: long enough to rotate some rows on a loaded machine (start-up
    // counts), short enough to stop before the end (--max-rate: at most ~6,000 of the 10,000 rows).
    const first = await ws.run(['rotate', '--batch-size', '100', '--max-rate', '2000', '--max-duration', '3s']);
    expectExit(first, 75);
    expect(first.stdout).toMatch(/run "pg-rekey rotate --to new" again/);
    const done = await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
    expect(done.rows[0].n).toBeGreaterThan(0);
    expect(done.rows[0].n).toBeLessThan(ROWS);
    const midway = await ws.run(['status', '--json']);
    expectExit(midway, 0);
    const status = JSON.parse(midway.stdout);
    // Nobody works on the run now: status says so, though the runs row stays open for the next rotate.
    expect(status).toMatchObject({
      status: 'stopped',
      storedStatus: 'running',
      note: 'stopped: no worker holds a lease — run "pg-rekey rotate --to new" to resume',
    });
    expect(status.targets[0].target).toBe('public.people');
    expect(status.targets[0].examined).toBeGreaterThan(0);
    expect(status.targets[0].examined).toBeLessThan(ROWS);
    expect(status.targets[0].ranges.length).toBeGreaterThan(0);
    expect(status.workers).toEqual([]); // the stopped process handed its ranges back
    const stoppedHuman = await ws.run(['status']);
    expect(stoppedHuman.stdout).toMatch(/Run \d+: stopped \(recorded as running\) · to key new/);
    expect(stoppedHuman.stdout).toContain('stopped: no worker holds a lease — run "pg-rekey rotate --to new" to resume');
    // --watch gives up on a run nobody works on once it has seen it stopped twice (2 s apart).
    const watch = await ws.run(['status', '--watch', '--json'], { timeoutMs: 20_000 });
    expect(watch.timedOut).toBe(false);
    expectExit(watch, 0);
    // (the run's status, at the top level of each document; its ranges show "stopped" too)
    expect(watch.stdout.match(/^  "status": "stopped"/gm)).toHaveLength(2);
    const second = await ws.run(['rotate', '--json']);
    expectExit(second, 0);
    expect(JSON.parse(second.stdout).status).toBe('succeeded');
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
    const finished = JSON.parse((await ws.run(['status', '--json'])).stdout);
    expect(finished.status).toBe('succeeded');
    expect(finished.targets[0].ranges.every((r: { status: string }) => r.status === 'done')).toBe(true);
    const human = await ws.run(['status']);
    expect(human.stdout).toMatch(/Run \d+: succeeded · to key new/);
  }, 120_000);

  it('SIGTERM stops at a batch boundary with exit 75; the next run finishes', async () => {
    const ROWS = 10_000;
    const { db, ws } = await freshRotation('sigterm', ROWS);
    const cli = await startCli(ws, ['rotate', '--batch-size', '100', '--max-rate', '2000']);
    await waitForStderr(cli, /rotation run \d+/);
    await sleep(800);
    // While it works, status shows the run running, with this process's lease.
    const working = JSON.parse((await ws.run(['status', '--json'])).stdout);
    expect(working).toMatchObject({ status: 'running', storedStatus: 'running', note: null });
    expect(working.workers.length).toBeGreaterThan(0);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).toBe(75);
    // The range was handed back: the next run continues at once (no lease wait).
    const second = await ws.run(['rotate', '--json']);
    expectExit(second, 0);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  }, 120_000);
});

describe('rotate --dry-run, stopped', () => {
  it('SIGTERM during the scan stops it between batches with exit 75 and counts marked partial; nothing is written', async () => {
    const ROWS = 20_000;
    const { db, ws } = await freshRotation('dry_sigterm', ROWS);
    const cli = await startCli(ws, ['rotate', '--dry-run', '--batch-size', '10']);
    await waitForStderr(cli, /Dry run to key new: reading public\.people/);
    // A long migration locks the table: the dry run's next batch read waits for it, and the signal arrives then.
    const blocker = await db.pool.connect();
    try {
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
      await waitForLockWait(db.pool, '%people% AS t%LIMIT%', { until: cli.done });
      cli.child.kill('SIGTERM');
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    const result = await cli.done;
    expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 75, signal: null });
    expect(result.stdout).toContain('Stopped by SIGTERM before the dry run finished: the counts below cover only the rows read before the stop.');
    const examined = Number(/public\.people: (\d+) rows examined \(stopped before the end of the table\)/.exec(result.stdout)?.[1]);
    expect(examined).toBeGreaterThan(0);
    expect(examined).toBeLessThan(ROWS);
    const written = await db.pool.query(
      `SELECT (SELECT count(*) FROM pgrekey.runs WHERE kind = 'rotate')::int AS runs,
              (SELECT count(*) FROM people WHERE email_key_version IS NOT NULL OR mobno_key_version IS NOT NULL)::int AS hints`,
    );
    expect(written.rows).toEqual([{ runs: 0, hints: 0 }]);
  }, 120_000);

  it('--max-duration bounds it like a rotation: exit 75, nothing written', async () => {
    const { db, ws } = await freshRotation('dry_deadline', 2000);
    const result = await ws.run(['rotate', '--dry-run', '--max-duration', '1ms', '--json']);
    expectExit(result, 75);
    expect(JSON.parse(result.stdout)).toMatchObject({ dryRun: true, status: 'stopped' });
    const keys = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.keys`);
    expect(keys.rows[0].n).toBe(0);
  }, 120_000);
});

describe('rotate --dry-run, throttled', () => {
  // A DBA rehearses on the primary with the options of the real run. A batch
  // of 20 rows at 1 row/s, or a 60 s pause after it, keeps the dry run on its
  // first batch past its --max-duration: it stops there (exit 75), having read
  // 20 of the 200 rows. Before, it ignored both and read the whole table at
  // full speed (a fraction of a second), exit 0. The 12 s leave a loaded
  // machine ample time for start-up and the first batch; the waits (20 s,
  // 60 s) are far longer, so no second batch can begin. --lease is raised
  // because rotate refuses waits above half a lease.
  it.each([
    ['--max-rate', '1'],
    ['--pause-ms', '60000'],
  ])('%s %s paces it as it paces a rotation: at --max-duration it has examined its first batch only', async (flag, value) => {
    const { ws } = await freshRotation(`dry_${flag.slice(2, 7)}`, 200);
    const result = await ws.run(['rotate', '--dry-run', '--batch-size', '20', '--workers', '1', '--lease', '5m', flag, value, '--max-duration', '12s', '--json']);
    expectExit(result, 75);
    expect(JSON.parse(result.stdout)).toMatchObject({ dryRun: true, status: 'stopped', targets: [{ target: 'public.people', complete: false, examined: 20 }] });
  }, 120_000);
});

describe('stopping during the start-up', () => {
  /** Holds an ACCESS EXCLUSIVE lock on people, as a long migration would, until the returned release(). */
  async function lockPeople(pool: pg.Pool): Promise<() => Promise<void>> {
    const blocker = await pool.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await blocker.query('ROLLBACK');
      blocker.release();
    };
  }
  const rotationRuns = async (pool: pg.Pool) => (await pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate'`)).rows[0].n;

  it('SIGTERM while rotate waits for a lock on the target exits 75 at once, with no run started', async () => {
    const { db, ws } = await freshRotation('startup_sigterm', 2000);
    const release = await lockPeople(db.pool);
    try {
      const cli = await startCli(ws, ['rotate']);
      await waitForLockWait(db.pool);
      const signalled = Date.now();
      cli.child.kill('SIGTERM');
      const result = await cli.done;
      expect({ code: result.code, signal: result.signal }, result.stderr).toEqual({ code: 75, signal: null });
      // Not after the lock is gone: the wait was cancelled.
      expect(Date.now() - signalled).toBeLessThan(3000);
      expect(result.stdout).toMatch(/Stopped during start-up: this process changed no value/);
    } finally {
      await release();
    }
    expect(await rotationRuns(db.pool)).toBe(0);
    const changed = await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
    expect(changed.rows[0].n).toBe(0);
  }, 60_000);

  it('--max-duration counts the start-up: with the target locked, rotate exits 75 when the time is up', async () => {
    const { db, ws } = await freshRotation('startup_deadline', 2000);
    const release = await lockPeople(db.pool);
    try {
      const started = Date.now();
      const result = await ws.run(['rotate', '--max-duration', '2s', '--json'], { timeoutMs: 30_000 });
      const elapsed = Date.now() - started;
      expectExit(result, 75);
      expect(JSON.parse(result.stdout)).toEqual({ status: 'stopped', runId: null });
      // 2 s plus the process's own start; without the deadline it waits as long as the lock is held.
      expect(elapsed).toBeGreaterThanOrEqual(2000);
      expect(elapsed).toBeLessThan(6000);
    } finally {
      await release();
    }
    expect(await rotationRuns(db.pool)).toBe(0);
    // Nothing was left behind: the next rotate does the whole job.
    expectExit(await ws.run(['rotate']), 0);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(2000);
  }, 60_000);
});

describe('a wrong secret for a registered key', () => {
  it('exits 2 naming the key, and writes nothing', async () => {
    const { db, ws } = await freshRotation('wrongkey', 500);
    expectExit(await ws.run(['keys', 'add', 'new']), 0);
    const snapshot = async () =>
      (await db.pool.query(`SELECT md5(string_agg(p::text, '|' ORDER BY id)) ||
        (SELECT count(*) FROM pgrekey.runs) || (SELECT count(*) FROM pgrekey.keys) AS s FROM people p`)).rows[0].s;
    const before = await snapshot();
    const wrong = 'django-insecure-this-is-not-the-registered-secret!!';
    const result = await ws.run(['rotate'], { env: { SECRET_KEY: wrong } });
    expectExit(result, 2);
    expect(result.stderr).toContain('key new does not match the registered key new — is the right secret deployed?');
    expect(result.stderr + result.stdout).not.toContain(wrong);
    expect(await snapshot()).toBe(before);
  }, 60_000);
});
