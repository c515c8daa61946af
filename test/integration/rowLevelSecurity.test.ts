/**
 * Row-level security that hides rows from pg-rekey's role would make rotate
 * and verify see only part of the table: the rest would stay on the old key,
 * verify would pass, and the old key could be retired. pg-rekey refuses such a
 * table (exit 2, nothing written) and works where the role sees every row.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumOfPeopleAndRegistry, useTestDatabase } from '../helpers/database.js';
import { expectAllUnderKey, expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('rls');
let ws: RotationWorkspace;
const ROWS = 500;
// Roles are cluster-wide; a fresh name keeps parallel or repeated runs apart.
const owner = `rls_owner_${randomBytes(4).toString('hex')}`;
let ownerUrl: string;

const checksum = () => checksumOfPeopleAndRegistry(db.current.pool);

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  // The table's owner, which pg-rekey connects as; a policy shows it the even rows only.
  await db.current.pool.query(`
    CREATE ROLE ${owner} LOGIN PASSWORD 'x';
    ALTER TABLE people OWNER TO ${owner};
    GRANT USAGE ON SCHEMA pgrekey TO ${owner};
    GRANT ALL ON ALL TABLES IN SCHEMA pgrekey TO ${owner};
    GRANT ALL ON ALL SEQUENCES IN SCHEMA pgrekey TO ${owner};
    ALTER TABLE people ENABLE ROW LEVEL SECURITY;
    CREATE POLICY even_rows ON people USING (id % 2 = 0);`);
  const url = new URL(db.current.url);
  url.username = owner;
  url.password = 'x';
  ownerUrl = url.toString();
});

afterAll(() => ws?.cleanup());

describe('row-level security', () => {
  it('a role the policies filter: rotate, its dry run, verify and keys retire exit 2 and write nothing', async () => {
    await db.current.pool.query('ALTER TABLE people FORCE ROW LEVEL SECURITY');
    const before = await checksum();
    for (const args of [['rotate'], ['rotate', '--dry-run'], ['verify'], ['keys', 'retire', 'old', '--reason', 'test']]) {
      const result = await ws.run(args, { env: { DATABASE_URL: ownerUrl } });
      expectExit(result, 2);
      expect(result.stderr).toContain(`row-level security policies filter the rows of public.people for role ${owner}`);
      expect(result.stderr).toMatch(/connect as the table owner \(without FORCE ROW LEVEL SECURITY\) or a role with BYPASSRLS/);
    }
    expect(await checksum()).toBe(before);
    // keys list does not show partial counts: the target is listed as not counted, with the reason.
    const list = await ws.run(['keys', 'list', '--json'], { env: { DATABASE_URL: ownerUrl } });
    expectExit(list, 0);
    expect(JSON.parse(list.stdout).uncounted).toEqual([
      { target: 'public.people', reason: expect.stringContaining(`row-level security policies filter the rows of public.people for role ${owner}`) },
    ]);
  });

  it('the owner without FORCE ROW LEVEL SECURITY sees every row, and rotates them all', async () => {
    await db.current.pool.query('ALTER TABLE people NO FORCE ROW LEVEL SECURITY');
    const result = await ws.run(['rotate', '--json'], { env: { DATABASE_URL: ownerUrl } });
    expectExit(result, 0);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: 'succeeded', examined: ROWS });
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
  });
});
