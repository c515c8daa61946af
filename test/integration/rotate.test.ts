import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checksumOfPeopleAndRegistry, useTestDatabase } from '../helpers/database.js';
import { expectAllUnderKey, expectExit, plaintextsOf, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('rotate');
let ws: RotationWorkspace;
const ROWS = 3000;

const checksum = () => checksumOfPeopleAndRegistry(db.current.pool);

describe('rotate', () => {
  beforeAll(async () => {
    ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
    // Register the keys (new is primary) so the dry-run checksum compares like with like.
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
  });
  afterAll(() => ws?.cleanup());

  it('--dry-run reports what would change and leaves the database byte-identical', async () => {
    const before = await checksum();
    const result = await ws.run(['rotate', '--dry-run', '--json']);
    expectExit(result, 0);
    const report = JSON.parse(result.stdout);
    const people = report.targets[0];
    expect(people.examined).toBe(ROWS);
    expect(people.wouldChange.email).toEqual({ old: ROWS });
    expect(people.wouldChange.mobno.old).toBe(ROWS - Math.floor(ROWS / 7));
    expect(people.skipped).toBe(Math.floor(ROWS / 7));
    expect(await checksum()).toBe(before);
  });

  it('rotates every value to the primary key, keeping plaintexts and Fernet timestamps', async () => {
    const before = await db.current.pool.query<{ email: string }>('SELECT email FROM people WHERE id = 1');
    const result = await ws.run(['rotate', '--json', '--batch-size', '250', '--workers', '2']);
    expectExit(result, 0);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('succeeded');
    expect(summary.bySource['public.people'].email).toEqual({ old: ROWS });
    expect(summary.failed).toBe(0);
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
    const after = await db.current.pool.query<{ email: string }>('SELECT email FROM people WHERE id = 1');
    const fernetTime = (stored: string) =>
      Buffer.from(Buffer.from(stored.slice('FERNET_V1:'.length), 'base64url').toString(), 'base64url').readBigUInt64BE(1);
    expect(after.rows[0]!.email).not.toBe(before.rows[0]!.email);
    expect(fernetTime(after.rows[0]!.email)).toBe(fernetTime(before.rows[0]!.email));
    // A table of a few batches is still split, so both workers have ranges to claim.
    const ranges = await db.current.pool.query<{ lower: string[] | null; upper: string[] | null }>(
      'SELECT lower_bound AS lower, upper_bound AS upper FROM pgrekey.ranges WHERE run_id = $1 ORDER BY ordinal',
      [summary.runId],
    );
    expect(ranges.rows).toHaveLength(3);
    // They tile the key space: the first starts at the beginning, each next one where the one before ends, the last runs to the end.
    const [first, second, third] = ranges.rows;
    expect([first!.lower, second!.lower, third!.lower, third!.upper]).toEqual([null, first!.upper, second!.upper, null]);
    expect(first!.upper).not.toBeNull();
    expect(second!.upper).not.toBeNull();
  });

  it('says so and exits 0 when re-run on a finished rotation, writing nothing', async () => {
    const runsBefore = await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.runs');
    const result = await ws.run(['rotate']);
    expectExit(result, 0);
    expect(result.stdout).toMatch(/Nothing to rotate/);
    const runsAfter = await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.runs');
    expect(runsAfter.rows[0].n).toBe(runsBefore.rows[0].n);
  });

  it('picks up rows an application rewrote with the old key (the trigger reset their version)', async () => {
    const codec = await (await import('../helpers/rotationFixture.js')).bothKeysCodec();
    await db.current.pool.query('UPDATE people SET email = $1 WHERE id = 5', [codec.encrypt(plaintextsOf(5).email, { keyId: 'old' })]);
    const version = await db.current.pool.query('SELECT email_key_version FROM people WHERE id = 5');
    expect(version.rows[0].email_key_version).toBeNull();
    const result = await ws.run(['rotate', '--json']);
    expectExit(result, 0);
    expect(JSON.parse(result.stdout).bySource['public.people'].email).toEqual({ old: 1 });
    await expectAllUnderKey(db.current.pool, 'new');
  });

  it('--dry-run on a mostly rotated table counts every value already under the target key, not only those in rows it reads', async () => {
    const codec = await (await import('../helpers/rotationFixture.js')).bothKeysCodec();
    await db.current.pool.query('UPDATE people SET email = $1 WHERE id = 6', [codec.encrypt(plaintextsOf(6).email, { keyId: 'old' })]);
    const result = await ws.run(['rotate', '--dry-run', '--json']);
    expectExit(result, 0);
    const people = JSON.parse(result.stdout).targets[0];
    expect(people.wouldChange).toEqual({ email: { old: 1 } });
    const truth = await db.current.pool.query(
      `SELECT (count(*) FILTER (WHERE email_key_version = k.version) + count(*) FILTER (WHERE mobno_key_version = k.version))::int AS n
         FROM people, pgrekey.keys k WHERE k.key_id = 'new' GROUP BY k.version`,
    );
    expect(truth.rows[0].n).toBe(2 * ROWS - Math.floor(ROWS / 7) - 1);
    expect(people.alreadyDone).toBe(truth.rows[0].n);
    const human = await ws.run(['rotate', '--dry-run']);
    expect(human.stdout).toContain(`${truth.rows[0].n} already under new`);
    expectExit(await ws.run(['rotate']), 0);
  });

  it('rotates back to the old key with --to (rollback)', async () => {
    const result = await ws.run(['rotate', '--to', 'old', '--json']);
    expectExit(result, 0);
    await expectAllUnderKey(db.current.pool, 'old');
  });
});
