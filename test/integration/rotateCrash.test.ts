/**
 * Crash safety: kill -9 of rotating processes at random moments, and several
 * worker processes sharing one run with one of them killed. Every row must end
 * under the target key with its original plaintext, rewritten exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  countRewrites,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  startCli,
  useFreshRotations,
  waitForStderr,
} from '../helpers/rotationFixture.js';

const freshRotation = useFreshRotations();

// Short leases so a restarted process takes over a killed one's range quickly.
const FAST = ['--batch-size', '200', '--lease', '1s'];

describe('rotate under kill -9', () => {
  it('resumes after five kills at random moments: every row rotated exactly once', async () => {
    const ROWS = 50_000;
    const { db, ws } = await freshRotation('crash', ROWS);
    await countRewrites(db.pool);
    let kills = 0;
    for (let attempt = 0; kills < 5 && attempt < 20; attempt++) {
      const cli = await startCli(ws, ['rotate', ...FAST, '--max-rate', '20000']);
      // A random moment once the rotation is under way (start-up time varies with load).
      await waitForStderr(cli, /rotation run \d+/);
      await sleep(100 + Math.random() * 900);
      if (cli.child.exitCode !== null) break; // finished before we could kill it
      cli.child.kill('SIGKILL');
      const result = await cli.done;
      expect(result.signal).toBe('SIGKILL');
      kills++;
    }
    expect(kills).toBe(5);
    const { rows } = await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate' AND status = 'running'`);
    expect(rows[0].n).toBe(1); // the killed runs left one unfinished run to resume
    const final = await ws.run(['rotate', ...FAST, '--json']);
    expectExit(final, 0);
    expect(JSON.parse(final.stdout).status).toBe('succeeded');
    await expectEachRewrittenOnce(db.pool, ROWS);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  }, 240_000);

  it('three worker processes share one run; one killed mid-run, the others finish its range', async () => {
    const ROWS = 40_000;
    const { db, ws } = await freshRotation('workers', ROWS);
    await countRewrites(db.pool);
    // Start the run first so all three join the same one.
    const clis = await Promise.all([0, 1, 2].map(() => startCli(ws, ['rotate', ...FAST, '--workers', '1', '--max-rate', '8000'])));
    await Promise.all(clis.map((c) => waitForStderr(c, /rotation run \d+/)));
    await sleep(700);
    clis[0]!.child.kill('SIGKILL');
    const results = await Promise.all(clis.map((c) => c.done));
    expect(results[0]!.signal).toBe('SIGKILL');
    for (const r of results.slice(1)) expect(r.code, r.stderr).toBe(0);
    const runs = await db.pool.query(`SELECT status, count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate' GROUP BY status`);
    expect(runs.rows).toEqual([{ status: 'succeeded', n: 1 }]);
    await expectEachRewrittenOnce(db.pool, ROWS);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  }, 240_000);
});
