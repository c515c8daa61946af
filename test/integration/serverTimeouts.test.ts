/**
 * Timeouts a DBA sets for pg-rekey's role or database (ALTER ROLE/DATABASE …
 * SET statement_timeout, lock_timeout, transaction_timeout) end a command
 * outside the rotation batches, which set their own. pg-rekey then says which
 * setting stopped it and what to do, exit 69 ("the database refused us"),
 * instead of an "internal error: a bug in pg-rekey" (exit 70), and writes nothing.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import '../helpers/provided.js';
import { asDatabaseError } from '../../src/cli/session.js';
import { exitCodeFor } from '../../src/cli/exitCodes.js';
import { connectClient } from '../../src/db/pool.js';
import { sqlstateOf } from '../../src/db/sqlstate.js';
import { isTransient } from '../../src/rotation/retry.js';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('server_timeouts');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 100);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
});
afterAll(() => ws?.cleanup());

/** Runs `fn` while another session holds an exclusive lock on pg-rekey's key registry, which every command reads first. */
async function withRegistryLocked<T>(fn: () => Promise<T>): Promise<T> {
  const blocker: pg.PoolClient = await db.current.pool.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE pgrekey.keys IN ACCESS EXCLUSIVE MODE');
    return await fn();
  } finally {
    await blocker.query('ROLLBACK');
    blocker.release();
  }
}

async function runCount(): Promise<number> {
  return (await db.current.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM pgrekey.runs')).rows[0]!.n;
}

describe('a timeout set for the database ends a command waiting on a lock', () => {
  for (const { setting, sqlstate, advice, since } of [
    { setting: "lock_timeout = '100ms'", sqlstate: '55P03', advice: /lock_timeout/, since: 0 },
    { setting: "statement_timeout = '100ms'", sqlstate: '57014', advice: /statement_timeout/, since: 0 },
    // transaction_timeout is PostgreSQL 17's.
    { setting: "transaction_timeout = '100ms'", sqlstate: '25P04', advice: /transaction_timeout/, since: 170000 },
  ]) {
    it.runIf(inject('pgServerVersionNum') >= since)(`${setting}: exit 69 naming the setting, nothing written`, async () => {
      const before = await runCount();
      await db.current.pool.query(`ALTER DATABASE ${db.current.name} SET ${setting}`);
      try {
        for (const args of [['verify'], ['rotate'], ['keys', 'promote', 'old', '--reason', 'test'], ['keys', 'list']]) {
          const result = await withRegistryLocked(() => ws.run(args));
          expectExit(result, 69);
          expect(result.stderr, args.join(' ')).toContain(`(SQLSTATE ${sqlstate})`);
          expect(result.stderr, args.join(' ')).toMatch(advice);
          expect(result.stderr, args.join(' ')).not.toMatch(/internal error/);
        }
      } finally {
        await db.current.pool.query(`ALTER DATABASE ${db.current.name} RESET ALL`);
      }
      expect(await runCount()).toBe(before);
    });
  }
});

describe('idle_session_timeout (PostgreSQL 14+) ending a pg-rekey connection between two statements', () => {
  it('the next statement fails with 57P05: a connection error, retried on a fresh connection, else exit 69 naming the setting', async () => {
    const client = await connectClient(db.current.url, 'pg-rekey');
    let failure: unknown;
    try {
      await client.query(`SET idle_session_timeout = '50ms'`);
      // The event loop busy for longer than the timeout, as while a batch is decrypted on the main
      // thread: the server ends the idle session, and its FATAL is read only after the next statement
      // went out, which then fails with it (a pooled connection is handed out the same way).
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
      failure = await client.query('SELECT 1').then(() => undefined, (err: unknown) => err);
    } finally {
      await client.end().catch(() => undefined);
    }
    expect(sqlstateOf(failure)).toBe('57P05');
    // The rotation's batches and claims retry it on a fresh connection (withRetry).
    expect(isTransient(failure)).toBe(true);
    // Anywhere else (a start-up query, verify's reader): exit 69 with what to do, not 70.
    const reported = asDatabaseError(failure);
    expect(exitCodeFor(reported)).toBe(69);
    expect((reported as Error).message).toMatch(/idle_session_timeout set for pg-rekey's role or database/);
    expect((reported as Error).message).toContain('ALTER ROLE <role> SET idle_session_timeout = 0');
    expect((reported as Error).message).toContain('(SQLSTATE 57P05)');
  });
});
