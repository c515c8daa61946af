/**
 * pg-rekey pointed at a server that refuses writes (a hot standby, or
 * default_transaction_read_only) says so and what to do, exit 69, instead of
 * an "internal error".
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('read_only');
let ws: RotationWorkspace;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 200);
});
afterAll(() => ws?.cleanup());

describe('a database that refuses writes', () => {
  it('rotate exits 69 naming the likely cause; nothing is written', async () => {
    const client = await db.current.pool.connect();
    try {
      await client.query(`ALTER DATABASE ${db.current.name} SET default_transaction_read_only = on`);
      const result = await ws.run(['rotate']);
      expectExit(result, 69);
      expect(result.stderr).toContain('the database refuses writes: cannot execute');
      expect(result.stderr).toContain('(SQLSTATE 25006) — is this a standby, or is default_transaction_read_only on? Connect pg-rekey to the primary');
      // This session predates the setting, so it can still write (and undo it).
      await client.query(`ALTER DATABASE ${db.current.name} RESET default_transaction_read_only`);
      const runs = await client.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind <> 'add'`);
      expect(runs.rows[0].n).toBe(0);
    } finally {
      client.release();
    }
    expectExit(await ws.run(['rotate']), 0);
  });
});
