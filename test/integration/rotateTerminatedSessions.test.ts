/**
 * The server terminating rotate's sessions mid-run (a DBA's
 * pg_terminate_backend, a failover, a pooler restart) never crashes the
 * process: it retries or exits with a code a deploy hook understands (0, 69,
 * 75), and the next run completes with every row rotated exactly once.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, it } from 'vitest';
import {
  countRewrites,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  startCli,
  useFreshRotations,
  waitForStderr,
} from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();
const ROWS = 20_000;

it('survives its sessions being terminated, and the next run completes', async () => {
  const { db, ws } = await fresh('terminated_sessions', ROWS);
  await countRewrites(db.pool);
  for (let attempt = 0; attempt < 4; attempt++) {
    const cli = await startCli(ws, ['rotate', '--batch-size', '100', '--max-rate', '4000', '--lease', '2s', '--crypto-threads', String(attempt % 2)]);
    await waitForStderr(cli, /rotation run \d+/);
    for (let i = 0; i < 8 && cli.child.exitCode === null; i++) {
      await sleep(100);
      await db.pool.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'pg-rekey' AND pid <> pg_backend_pid()`);
    }
    const { code, stderr } = await cli.done;
    expect(stderr).not.toContain('Unhandled');
    expect(stderr).not.toMatch(/^\s+at /m); // no stack trace
    expect([0, 69, 75], stderr.split('\n').filter((l) => !l.includes('"level":30')).join('\n')).toContain(code);
  }
  expectExit(await ws.run(['rotate', '--lease', '2s']), 0);
  expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  await expectEachRewrittenOnce(db.pool, ROWS);
}, 240_000);

it('retries batches whose pooled connection the server ended for idleness (idle_session_timeout): never exit 70, and the run completes', async () => {
  const { db, ws } = await fresh('idle_session_timeout', ROWS);
  await countRewrites(db.pool);
  // pg-rekey's role, as a DBA configures it; the test's own connections keep no timeout.
  const role = `rekey_idle_${randomBytes(4).toString('hex')}`;
  await db.pool.query(`CREATE ROLE ${role} LOGIN SUPERUSER PASSWORD 'x'`);
  try {
    await db.pool.query(`ALTER ROLE ${role} SET idle_session_timeout = '50ms'`);
    const url = new URL(db.url);
    url.username = role;
    url.password = 'x';
    // Each batch is decrypted on the main thread (--crypto-threads 0) for far longer than
    // 50 ms, while the connection its read used idles in the pool: the server ends it, and
    // the batch's write, sent on it, fails with 57P05. Before, that was exit 70.
    const result = await ws.run(['rotate', '--workers', '1', '--crypto-threads', '0', '--batch-size', '5000'], { env: { DATABASE_URL: url.toString() } });
    expect(result.stderr).not.toMatch(/internal error/);
    expect([0, 69], result.stderr).toContain(result.code);
    if (result.code === 0) expect(result.stderr).toMatch(/"sqlstate":"57P05".*transient database error, retrying/);
    // A statement outside the retried batches (the start-up) may meet it too: then exit 69 with what to do.
    else expect(result.stderr).toContain('ALTER ROLE <role> SET idle_session_timeout = 0');
  } finally {
    await db.pool.query(`ALTER ROLE ${role} RESET idle_session_timeout`);
  }
  expectExit(await ws.run(['rotate']), 0);
  expect(await expectAllUnderKey(db.pool, 'new')).toBe(ROWS);
  await expectEachRewrittenOnce(db.pool, ROWS);
}, 240_000);
