/**
 * The network path to the server black-holes mid-rotation (no RST, no FIN:
 * bytes just stop flowing). A stop must still end rotate in bounded time with
 * a code a deploy hook understands, and the next run must finish the job.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { startBlackholeProxy } from '../helpers/blackholeProxy.js';
import { countRewrites, expectAllUnderKey, expectEachRewrittenOnce, expectExit, startCli, useFreshRotations, waitForStderr } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();
const ROWS = 20_000;

it('SIGTERM while the network black-holes: rotate exits (69 or 75) in bounded time, the next run completes', async () => {
  const { db, ws } = await fresh('blackhole_sigterm', ROWS);
  await countRewrites(db.pool);
  const proxy = await startBlackholeProxy(ws.env.DATABASE_URL!);
  try {
    const throughProxy = { ...ws, env: { ...ws.env, DATABASE_URL: proxy.url } };
    const cli = await startCli(throughProxy, ['rotate', '--workers', '2', '--crypto-threads', '1', '--batch-size', '100', '--max-rate', '2000', '--lease', '2s', '--statement-timeout', '5s']);
    await waitForStderr(cli, /rotation run \d+/);
    // Some batches committed, so the black hole hits a run in full swing.
    for (let n = 0; n < 200; n++) {
      const { rows } = await db.pool.query<{ n: number }>(`SELECT coalesce(sum(rows_examined), 0)::int AS n FROM pgrekey.ranges`);
      if (rows[0]!.n >= 400) break;
      await sleep(50);
    }
    proxy.blackhole();
    cli.child.kill('SIGTERM');
    // Bounded by fixed timeouts, not by the network: the silent connections are closed at
    // --statement-timeout + 10 s, then handing the ranges back gives up after its connect
    // timeouts (10 s each). Before, the workers waited for ever on their statements.
    const killer = setTimeout(() => cli.child.kill('SIGKILL'), 150_000);
    const result = await cli.done;
    clearTimeout(killer);
    expect(result.signal, `rotate hung after SIGTERM with the network black-holed\n${result.stderr}`).toBeNull();
    expect([69, 75], result.stderr).toContain(result.code);
    expect(result.stderr).not.toMatch(/^\s+at /m); // no stack trace
    if (result.code === 69) expect(result.stderr).toMatch(/database unavailable/);
  } finally {
    proxy.restore();
    await proxy.close();
  }
  expectExit(await ws.run(['rotate', '--lease', '2s']), 0);
  expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  await expectEachRewrittenOnce(db.pool, ROWS);
}, 300_000);
