/**
 * The rotate flags a DBA relies on: retries on lock timeouts, the audit fields,
 * --target, progress lines without secrets, and clear usage errors.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, NEW_SECRET, OLD_SECRET, plaintextsOf, prepareRotation, startCli, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('rotopts');
let ws: RotationWorkspace;
const ROWS = 3000;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
});
afterAll(() => ws?.cleanup());

describe('rotate options', () => {
  it('refuses bad usage with exit 2 and writes nothing', async () => {
    const emergency = await ws.run(['rotate', '--emergency']);
    expectExit(emergency, 2);
    expect(emergency.stderr).toMatch(/--emergency needs --reason/);
    const duration = await ws.run(['rotate', '--max-duration', 'soon']);
    expectExit(duration, 2);
    expect(duration.stderr).toMatch(/--max-duration soon: expected a duration/);
    const slow = await ws.run(['rotate', '--max-rate', '10', '--batch-size', '1000']);
    expectExit(slow, 2);
    expect(slow.stderr).toMatch(/more than half of --lease/);
    // --max-rate is shared by the workers: each of 4 waits for the others' batches, about
    // 4 × 100 / 200 s = 2 s between its own, twice the lease. Staged, a second rotate took
    // every range of this healthy process over; counting one batch's 0.5 s let it through.
    const shared = await ws.run(['rotate', '--workers', '4', '--batch-size', '100', '--max-rate', '200', '--lease', '1s']);
    expectExit(shared, 2);
    expect(shared.stderr).toMatch(/--batch-size 100 and --workers 4 wait up to 2000 ms between a worker's batches .*more than half of --lease \(1000 ms\)/);
    const target = await ws.run(['rotate', '--target', 'people.nope']);
    expectExit(target, 2);
    // A repeated --reason or --to: which one was meant is unclear, and the audit trail is append-only.
    for (const args of [['--emergency', '--reason', 'a', '--reason', 'b'], ['--to', 'new', '--to', 'old']]) {
      const twice = await ws.run(['rotate', ...args]);
      expectExit(twice, 2);
      expect(twice.stderr).toContain(`--${args[args.length - 2]!.slice(2)} is given more than once`);
    }
    const runs = await db.current.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate'`);
    expect(runs.rows[0].n).toBe(0);
  });

  it('--target limits the run to one column; --reason and --emergency are recorded', async () => {
    const result = await ws.run(['rotate', '--target', 'people.mobno', '--emergency', '--reason', 'laptop lost', '--json']);
    expectExit(result, 0);
    expect(Object.keys(JSON.parse(result.stdout).bySource['public.people'])).toEqual(['mobno']);
    const run = await db.current.pool.query(`SELECT trigger, reason, targets FROM pgrekey.runs WHERE kind = 'rotate'`);
    expect(run.rows).toEqual([{ trigger: 'emergency', reason: 'laptop lost', targets: ['public.people.mobno'] }]);
    const emails = await db.current.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
    expect(emails.rows[0].n).toBe(0);
  });

  it('waits out a row lock held by the application (lock timeout, retry with backoff) and logs no secret', async () => {
    const holder = await db.current.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM people WHERE id = 10 FOR UPDATE');
      const cli = await startCli(ws, ['rotate', '--lock-timeout', '200ms', '--log-level', 'debug', '--batch-size', '500']);
      // Hold the lock well past the first lock timeout once the rotator is at work.
      await new Promise<void>((resolve) => cli.child.stderr!.on('data', (d) => String(d).includes('claimed range') && resolve()));
      await sleep(1000);
      await holder.query('COMMIT');
      const result = await cli.done;
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toMatch(/transient database error, retrying/);
      expect(result.stderr).toMatch(/"sqlstate":"55P03"/);
      // Non-TTY progress: pino JSON lines on stderr.
      expect(result.stderr).toMatch(/"msg":"progress"/);
      const row = await db.current.pool.query<{ email: string }>('SELECT email FROM people WHERE id = 10');
      const all = result.stdout + result.stderr;
      for (const secret of [NEW_SECRET, OLD_SECRET, plaintextsOf(10).email, row.rows[0]!.email.slice(10, 50)]) {
        expect(all).not.toContain(secret);
      }
    } finally {
      holder.release();
    }
  });
});
