/**
 * pg-rekey run as a role that is neither superuser nor the table's owner,
 * with only the grants it needs: DML on pg-rekey's tables, SELECT and UPDATE
 * on the target. Each command works; with a grant missing, the command exits
 * 69 naming the role, the table, the columns and the GRANT, before writing
 * anything: no open rotation run, no failed verify run in the audit trail.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumOfPeopleAndRegistry, useTestDatabase } from '../helpers/database.js';
import { expectAllUnderKey, expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('role_privileges');
let ws: RotationWorkspace;
const ROWS = 300;
// Roles are cluster-wide; a fresh name keeps parallel or repeated runs apart.
const role = `rekey_${randomBytes(4).toString('hex')}`;
let env: Record<string, string>;

const checksum = () => checksumOfPeopleAndRegistry(db.current.pool);

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  await db.current.pool.query(`
    CREATE ROLE ${role} LOGIN PASSWORD 'x';
    GRANT USAGE ON SCHEMA pgrekey TO ${role};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA pgrekey TO ${role};
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA pgrekey TO ${role};`);
  const url = new URL(db.current.url);
  url.username = role;
  url.password = 'x';
  env = { DATABASE_URL: url.toString() };
});

afterAll(() => ws?.cleanup());

describe('a role with a grant missing on the target', () => {
  it('without UPDATE: rotate exits 69 naming the grant, and writes nothing (no open run)', async () => {
    await db.current.pool.query(`GRANT SELECT ON people TO ${role}`);
    const before = await checksum();
    const result = await ws.run(['rotate', '--workers', '3'], { env });
    expectExit(result, 69);
    expect(result.stderr).toContain(
      `permission denied: role ${role} may not UPDATE column(s) email, mobno, email_key_version, mobno_key_version of public.people, ` +
        `which pg-rekey rewrites when it rotates — GRANT UPDATE ON public.people TO ${role} (or on those columns); nothing was written`,
    );
    // A dry run only reads.
    expectExit(await ws.run(['rotate', '--dry-run'], { env }), 0);
    expect(await checksum()).toBe(before);
  });

  it('with UPDATE on the values but not on their key versions: verify --fix-versions and rotate exit 69', async () => {
    await db.current.pool.query(`GRANT UPDATE (email, mobno) ON people TO ${role}`);
    const before = await checksum();
    const fix = await ws.run(['verify', '--fix-versions'], { env });
    expectExit(fix, 69);
    expect(fix.stderr).toContain(`may not UPDATE column(s) email_key_version, mobno_key_version of public.people, which pg-rekey sets with --fix-versions`);
    expectExit(await ws.run(['rotate'], { env }), 69);
    expect(await checksum()).toBe(before);
  });

  it('without SELECT: verify exits 69 and records no verify run', async () => {
    await db.current.pool.query(`REVOKE ALL ON people FROM ${role}`);
    const before = await checksum();
    const result = await ws.run(['verify'], { env });
    expectExit(result, 69);
    expect(result.stderr).toContain(`permission denied: role ${role} may not SELECT column(s) id, email, mobno, email_key_version, mobno_key_version of public.people, which pg-rekey reads`);
    expect(await checksum()).toBe(before);
  });
});

describe('a role with the grants it needs', () => {
  it('rotates with 3 workers, verifies, promotes, retires and checks the audit trail', async () => {
    await db.current.pool.query(`GRANT SELECT, UPDATE ON people TO ${role}`);
    for (const args of [
      ['rotate', '--workers', '3', '--batch-size', '50'],
      ['status'],
      ['verify'],
      ['keys', 'promote', 'new', '--reason', 'test'],
      ['verify', '--without', 'old'],
      ['keys', 'retire', 'old', '--reason', 'test'],
      ['keys', 'list'],
      ['history', '--verify'],
    ]) {
      expectExit(await ws.run(args, { env }), 0);
    }
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
  });
});
