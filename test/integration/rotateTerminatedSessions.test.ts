/**
 * The server terminating rotate's sessions mid-run (a DBA's
 * pg_terminate_backend, a failover, a pooler restart) never crashes the
 * process: it retries or exits with a code a deploy hook understands (0, 69,
 * 75), and the next run completes with every row rotated exactly once.
 */
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
