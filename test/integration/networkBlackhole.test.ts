/**
 * The network path to the server black-holes (no RST, no FIN: bytes just stop
 * flowing). A stop must still end rotate or verify in bounded time with a code
 * a deploy hook understands; a worker cut off mid-batch must not keep its range
 * from the others; and the next run must finish the job.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import { startBlackholeProxy } from '../helpers/blackholeProxy.js';
import { countRewrites, expectAllUnderKey, expectEachRewrittenOnce, expectExit, startCli, useFreshRotations, waitForStderr } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();
const ROWS = 20_000;

/**
 * The proxy's URL with libpq's connect_timeout at its minimum (2 s), which
 * pg-rekey honours: the connects a stalled process retries over the dead path
 * give up sooner than the default 10 s, which would only lengthen these tests.
 */
const shortConnects = (url: string) => `${url}${url.includes('?') ? '&' : '?'}connect_timeout=2`;

it('SIGTERM while the network black-holes: rotate exits (69 or 75) in bounded time, the next run completes', async () => {
  const { db, ws } = await fresh('blackhole_sigterm', ROWS);
  await countRewrites(db.pool);
  const proxy = await startBlackholeProxy(ws.env.DATABASE_URL!);
  try {
    const throughProxy = { ...ws, env: { ...ws.env, DATABASE_URL: shortConnects(proxy.url) } };
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
    // timeouts (the URL's connect_timeout). Before, the workers waited for ever on their statements.
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

it('no stop, the network black-holed for good: rotate gives up with exit 69 instead of waiting for ever', async () => {
  const { db, ws } = await fresh('blackhole_no_stop', ROWS);
  const proxy = await startBlackholeProxy(ws.env.DATABASE_URL!);
  try {
    const throughProxy = { ...ws, env: { ...ws.env, DATABASE_URL: shortConnects(proxy.url) } };
    // The path dies as a batch's checkpoint write goes out; nobody sends a signal (a cron job without a timeout).
    const stalled = proxy.blackholeAfter('batches_committed = batches_committed + 1');
    const cli = await startCli(throughProxy, ['rotate', '--workers', '2', '--batch-size', '100', '--lease', '2s', '--statement-timeout', '5s']);
    await stalled;
    // Silent for --statement-timeout + 10 s: closed; the retries' connects time out (the URL's connect_timeout). Before, it never exited.
    const killer = setTimeout(() => cli.child.kill('SIGKILL'), 150_000);
    const result = await cli.done;
    clearTimeout(killer);
    expect(result.signal, `rotate waited for ever on a black-holed network\n${result.stderr}`).toBeNull();
    expect(result.code, result.stderr).toBe(69);
    expect(result.stderr).toMatch(/database unavailable/);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  } finally {
    proxy.restore();
    await proxy.close();
  }
  expectExit(await ws.run(['rotate', '--lease', '2s']), 0);
  expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
}, 300_000);

it('a worker black-holed inside a batch does not keep its range (and the run) from another process; its late commit is fenced', async () => {
  const { db, ws } = await fresh('blackhole_takeover', ROWS);
  await countRewrites(db.pool);
  const proxy = await startBlackholeProxy(ws.env.DATABASE_URL!);
  try {
    const throughProxy = { ...ws, env: { ...ws.env, DATABASE_URL: shortConnects(proxy.url) } };
    // The path dies just after a batch's checkpoint write reached the server: its
    // transaction holds the range's row and the batch's rows, and its client is gone.
    const stalled = proxy.blackholeAfter('batches_committed = batches_committed + 1');
    const a = await startCli(throughProxy, ['rotate', '--workers', '1', '--crypto-threads', '0', '--batch-size', '100', '--lease', '2s', '--statement-timeout', '5s']);
    await stalled;
    await waitForIdleInTransaction(db.pool);
    // Another host, connected directly, takes the range over once the lease has expired.
    const b = await ws.run(['rotate', '--lease', '2s'], { timeoutMs: 90_000 });
    expect(b.timedOut, `the other process waited for the stalled worker's range\n${b.stderr}`).toBe(false);
    expectExit(b, 0);
    // The path comes back: whatever the stalled worker still sends must not rewrite anything.
    proxy.restore();
    const late = await a.done;
    expect(late.stderr).not.toMatch(/^\s+at /m);
    expect([0, 4, 69, 75], late.stderr).toContain(late.code);
  } finally {
    proxy.restore();
    await proxy.close();
  }
  expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  await expectEachRewrittenOnce(db.pool, ROWS);
}, 300_000);

/** Resolves once a pg-rekey session sits idle in a transaction (the stalled batch), within 20 s. */
async function waitForIdleInTransaction(pool: import('pg').Pool): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pg-rekey' AND state = 'idle in transaction'`,
    );
    if (rows[0]!.n > 0) return;
    if (Date.now() > deadline) throw new Error('no pg-rekey session is idle in a transaction');
    await sleep(50);
  }
}

it('SIGTERM to a verify while the network black-holes: it exits 69 in bounded time instead of waiting for ever', async () => {
  const { ws } = await fresh('blackhole_verify', ROWS);
  const proxy = await startBlackholeProxy(ws.env.DATABASE_URL!);
  try {
    const throughProxy = { ...ws, env: { ...ws.env, DATABASE_URL: shortConnects(proxy.url) } };
    // The path dies as verify opens a read-only transaction (a chunk of its scan): the
    // statements it waits on, and the cancel a stop sends over a new connection, get no answer.
    const stalled = proxy.blackholeAfter('READ ONLY');
    const verify = await startCli(throughProxy, ['verify']);
    await stalled;
    verify.child.kill('SIGTERM');
    // After a stop, a connection silent for 30 s is closed. Before, verify never exited.
    const killer = setTimeout(() => verify.child.kill('SIGKILL'), 90_000);
    const result = await verify.done;
    clearTimeout(killer);
    expect(result.signal, `verify hung after SIGTERM with the network black-holed\n${result.stderr}`).toBeNull();
    expect(result.code, result.stderr).toBe(69);
    expect(result.stderr).toMatch(/database unavailable: the database server did not answer for 30 s/);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  } finally {
    proxy.restore();
    await proxy.close();
  }
  // Nothing of it is left behind: the next verify runs as usual.
  expectExit(await ws.run(['verify']), 0);
}, 300_000);
