/**
 * Timeouts a DBA sets for pg-rekey's role or database (ALTER ROLE/DATABASE …
 * SET statement_timeout, lock_timeout, transaction_timeout) end a command
 * outside the rotation batches, which set their own. pg-rekey then says which
 * setting stopped it and what to do, exit 69 ("the database refused us"),
 * instead of an "internal error: a bug in pg-rekey" (exit 70), and writes nothing.
 */
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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
  for (const { setting, sqlstate, advice } of [
    { setting: "lock_timeout = '100ms'", sqlstate: '55P03', advice: /lock_timeout/ },
    { setting: "statement_timeout = '100ms'", sqlstate: '57014', advice: /statement_timeout/ },
    { setting: "transaction_timeout = '100ms'", sqlstate: '25P04', advice: /transaction_timeout/ },
  ]) {
    it(`${setting}: exit 69 naming the setting, nothing written`, async () => {
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
