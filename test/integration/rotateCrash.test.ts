/**
 * Crash safety: kill -9 of rotating processes at random moments, and several
 * worker processes sharing one run with one of them killed. Every row must end
 * under the target key with its original plaintext, rewritten exactly once.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { hostname } from 'node:os';
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
      // At most ~1.1 s per attempt at 8,000 rows/s: five attempts cannot finish the 50,000 rows
      // (at 20,000 rows/s a fast server finished them before the fifth kill).
      const cli = await startCli(ws, ['rotate', ...FAST, '--max-rate', '8000']);
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

  it('status of a run whose only process was killed: running while the dead lease lives, then stopped, ranges included', async () => {
    const { db, ws } = await freshRotation('killed_status', 20_000);
    const cli = await startCli(ws, ['rotate', '--batch-size', '100', '--max-rate', '2000', '--lease', '2s', '--workers', '2']);
    await waitForStderr(cli, /rotation run \d+/);
    const statusOf = async () => JSON.parse((await ws.run(['status', '--json'])).stdout);
    const owner = `${hostname()}:${cli.child.pid}`;
    // Synchronise on its first committed batch (a live lease renewed by it), not on a guessed delay.
    let working = await statusOf();
    const started = Date.now() + 20_000;
    while (working.workers.length === 0 && Date.now() < started) working = await statusOf();
    expect(working.workers.length).toBeGreaterThan(0);
    cli.child.kill('SIGKILL');
    await cli.done;
    // Its lease lives on until it expires: nothing can tell a dead worker from a slow one before that.
    const dying = await statusOf();
    if (dying.status === 'running') expect(dying.workers.map((w: { owner: string }) => w.owner)).toContain(owner);
    // Once the leases have expired, nobody works on the run, and none of its ranges is shown running.
    const deadline = Date.now() + 20_000;
    let stopped = dying;
    while (stopped.status !== 'stopped' && Date.now() < deadline) stopped = await statusOf();
    expect(stopped).toMatchObject({ status: 'stopped', storedStatus: 'running', workers: [] });
    const ranges = stopped.targets[0].ranges as { status: string; examined: number; leaseOwner: string | null }[];
    expect(ranges.filter((r) => r.status === 'running')).toEqual([]);
    // The ranges it had claimed are stopped, naming their last holder; they continue from their checkpoints.
    const left = ranges.filter((r) => r.status === 'stopped');
    expect(left.length).toBeGreaterThan(0);
    for (const r of left) expect(r.leaseOwner).toBe(owner);
    expect(stopped.targets[0]).toMatchObject({ rate: 0, etaSeconds: null });
    const human = (await ws.run(['status'])).stdout;
    expect(human).toMatch(/\n\d+\s+stopped\s+\d+/);
    expect(human).not.toMatch(/\n\d+\s+running\s+\d+/);
    expectExit(await ws.run(['rotate']), 0);
    expect(await expectAllUnderKey(db.pool, 'new')).toBe(20_000);
  }, 120_000);
});
