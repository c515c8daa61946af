/**
 * The rate and ETA `status` shows for a run resumed across deploys: measured
 * over the latest stretch of work, not diluted by the time the run sat stopped.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { bothKeysCodec, expectExit, plaintextsOf, startCli, useFreshRotations, waitForStderr, type RotationWorkspace } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

interface TargetProgress {
  examined: number;
  estimatedTotal: number;
  rate: number;
  etaSeconds: number | null;
}
const progressOf = async (ws: RotationWorkspace): Promise<{ status: string; target: TargetProgress }> => {
  const shown = JSON.parse((await ws.run(['status', '--json'])).stdout);
  return { status: shown.status, target: shown.targets[0] };
};

it('after a stop and idle time, a resumed run is rated by its own work', async () => {
  const RATE = 2000;
  const { ws } = await fresh('status_rate', 30_000);
  const throttled = ['--batch-size', '100', '--max-rate', String(RATE)];
  expectExit(await ws.run(['rotate', ...throttled, '--max-duration', '2s']), 75);
  // Nobody works on it: no rate, no ETA (not one that grows while it waits).
  const stopped = await progressOf(ws);
  expect(stopped.status).toBe('stopped');
  expect(stopped.target).toMatchObject({ rate: 0, etaSeconds: null });

  // Idle for longer than it worked, then resumed by the next deploy.
  await sleep(8000);
  const cli = await startCli(ws, ['rotate', ...throttled, '--max-duration', '6s']);
  try {
    await waitForStderr(cli, /Joined rotation run \d+/);
    await sleep(3000);
    const resumed = await progressOf(ws);
    expect(resumed.status).toBe('running');
    // Measured from the first start, the 8 idle seconds would more than halve it.
    expect(resumed.target.rate).toBeGreaterThan(RATE * 0.6);
    expect(resumed.target.rate).toBeLessThan(RATE * 1.5);
    const left = resumed.target.estimatedTotal - resumed.target.examined;
    expect(resumed.target.etaSeconds).toBeLessThanOrEqual(Math.ceil(left / (RATE * 0.6)));
  } finally {
    await cli.done;
  }
}, 120_000);

it('a finished re-run, which examined only the rows left, is shown 100% done, not a share of the table', async () => {
  const { db, ws } = await fresh('status_rerun_total', 5000);
  expectExit(await ws.run(['rotate']), 0);
  // The application writes 50 rows with the old key again (their key versions are reset).
  const codec = await bothKeysCodec();
  for (let id = 1; id <= 50; id++) {
    await db.pool.query('UPDATE people SET email = $1 WHERE id = $2', [codec.encrypt(plaintextsOf(id).email, { keyId: 'old' }), id]);
  }
  expectExit(await ws.run(['rotate']), 0);
  const { status, target } = await progressOf(ws);
  expect(status).toBe('succeeded');
  expect(target.examined).toBeLessThan(5000);
  expect(target).toMatchObject({ estimatedTotal: target.examined, etaSeconds: null });
  expect((await ws.run(['status'])).stdout).toContain(`${target.examined} rows examined (100.0% of ~${target.examined})`);
}, 120_000);
