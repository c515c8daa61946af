/**
 * Bad rows: values no configured key decrypts, or not in the target's format,
 * are recorded by row key and reason (never the value), left untouched, and
 * the run goes on and exits 1. NULL and empty values are skipped and counted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCodec } from '../../src/crypto/createCodec.js';
import { casUpdateSql } from '../../src/rotation/batchSql.js';
import { digestOf } from '../../src/rotation/transformBatch.js';
import { resolveTarget } from '../../src/schema/resolveTarget.js';
import { useTestDatabase } from '../helpers/database.js';
import { bothKeysCodec, expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('badrows');
let ws: RotationWorkspace;
const ROWS = 2000;
const OTHER_SECRET = 'django-insecure-a-key-nobody-configured-0003!';

/** The bad values, by row id, with the reason each must be reported under. */
const bad: Record<number, { value: string; reason: string }> = {};

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
  const codec = await bothKeysCodec();
  const stranger = await createCodec({ format: 'django-fernet-v1', keys: [{ id: 'x', secret: 'env:X' }], env: { X: OTHER_SECRET } });
  const v2 = await createCodec({ format: 'django-fernet-v2', keys: [{ id: 'k1', secret: 'env:X' }], env: { X: OTHER_SECRET } });
  const good = codec.encrypt('victim@example.com', { keyId: 'old' });
  const inner = Buffer.from(good.slice('FERNET_V1:'.length), 'base64url').toString();
  // Flip one character of the inner token's ciphertext: still well-formed, but no key authenticates it.
  const flipped = inner.slice(0, 60) + (inner[60] === 'A' ? 'B' : 'A') + inner.slice(61);
  // Padded url-safe base64, as the application writes it.
  bad[11] = { value: `FERNET_V1:${Buffer.from(flipped).toString('base64').replace(/\+/g, '-').replace(/\//g, '_')}`, reason: 'no-key' };
  bad[12] = { value: good.slice(0, 40), reason: 'malformed' };
  bad[13] = { value: stranger.encrypt('stranger@example.com'), reason: 'no-key' };
  bad[14] = { value: 'alice@example.com', reason: 'plaintext' };
  bad[15] = { value: v2.encrypt('v2@example.com'), reason: 'wrong-format' };
  for (const [id, { value }] of Object.entries(bad)) {
    await db.current.pool.query('UPDATE people SET email = $1 WHERE id = $2', [value, id]);
  }
  await db.current.pool.query(`UPDATE people SET email = NULL WHERE id = 21`);
  await db.current.pool.query(`UPDATE people SET email = '' WHERE id = 22`);
});
afterAll(() => ws?.cleanup());

describe('rotate with bad rows', () => {
  it('records each bad value by row key and reason, leaves it untouched, rotates the rest and exits 1', async () => {
    const result = await ws.run(['rotate', '--json']);
    expectExit(result, 1);
    const summary = JSON.parse(result.stdout);
    expect(summary.status).toBe('failed');
    expect(summary.failed).toBe(Object.keys(bad).length);
    // Skipped: every 7th mobno is NULL, plus one NULL and one empty email.
    expect(summary.skipped).toBe(Math.floor(ROWS / 7) + 2);
    expect(summary.bySource['public.people'].email.old).toBe(ROWS - Object.keys(bad).length - 2);

    const failures = await db.current.pool.query<{ row_key: { id: string }; column_name: string; reason: string }>(
      `SELECT row_key, column_name, reason FROM pgrekey.failures ORDER BY (row_key->>'id')::int`,
    );
    expect(failures.rows).toEqual(
      Object.entries(bad).map(([id, b]) => ({ row_key: { id }, column_name: 'email', reason: b.reason })),
    );
    const rows = await db.current.pool.query<{ id: string; email: string; email_key_version: number | null }>(
      `SELECT id, email, email_key_version FROM people WHERE id = ANY($1::bigint[]) ORDER BY id`,
      [Object.keys(bad)],
    );
    for (const row of rows.rows) {
      expect(row.email).toBe(bad[Number(row.id)]!.value);
      expect(row.email_key_version).toBeNull();
    }
    // No value — plaintext or ciphertext — reaches the output or the failures table.
    const everything = result.stdout + result.stderr + JSON.stringify(failures.rows);
    for (const { value } of Object.values(bad)) expect(everything).not.toContain(value.slice(10, 40));
    expect(everything).not.toContain('alice@example.com');
  });

  it('--on-error abort stops at the first bad value and marks the run aborted', async () => {
    // The DBA deals with the earlier bad rows; one new plaintext value sits between two rows to rotate.
    await db.current.pool.query(`UPDATE people SET email = NULL WHERE id = ANY($1::bigint[])`, [Object.keys(bad)]);
    await db.current.pool.query(`UPDATE people SET email = 'bob@example.com', email_key_version = NULL WHERE id = 1500`);
    // Put some rows back under the old key so there is work before and after the bad one.
    const codec = await bothKeysCodec();
    for (const id of [1400, 1600]) {
      await db.current.pool.query('UPDATE people SET email = $1 WHERE id = $2', [codec.encrypt(`u${id}@example.com`, { keyId: 'old' }), id]);
    }
    const result = await ws.run(['rotate', '--on-error', 'abort', '--json', '--workers', '1']);
    expectExit(result, 1);
    const outcome = JSON.parse(result.stdout);
    expect(outcome.status).toBe('aborted');
    // The audit trail records what the aborted run did, not 0/0: the row is append-only from here on.
    const run = await db.current.pool.query(
      `SELECT status, rows_examined::int AS examined, rows_changed::int AS changed, rows_skipped::int AS skipped, rows_failed::int AS failed
         FROM pgrekey.runs WHERE id = $1`,
      [outcome.runId],
    );
    expect(outcome.changed).toBeGreaterThan(0);
    expect(run.rows[0]).toEqual({ status: 'aborted', examined: outcome.examined, changed: outcome.changed, skipped: outcome.skipped, failed: outcome.failed });
    // The bad value it stopped at is recorded by row key and reason.
    const failures = await db.current.pool.query(`SELECT row_key, column_name, reason FROM pgrekey.failures WHERE run_id = $1`, [outcome.runId]);
    expect({ failed: outcome.failed, failures: failures.rows }).toEqual({
      failed: 1,
      failures: [{ row_key: { id: '1500' }, column_name: 'email', reason: 'plaintext' }],
    });
    // The range it stopped in is not recorded as done: row 1600, after the bad value, was never examined.
    const open = await db.current.pool.query(`SELECT count(*)::int AS n FROM pgrekey.ranges WHERE run_id = $1 AND status <> 'done'`, [outcome.runId]);
    expect(open.rows[0].n).toBeGreaterThan(0);
    const after = await db.current.pool.query<{ id: string; v: string | null }>(
      `SELECT p.id, k.key_id AS v FROM people p LEFT JOIN pgrekey.keys k ON k.version = p.email_key_version WHERE p.id IN (1400, 1600) ORDER BY p.id`,
    );
    expect(after.rows).toEqual([
      { id: '1400', v: 'new' },
      { id: '1600', v: null },
    ]);
    // status tells the truth about the aborted run: its process has exited and
    // holds no lease, and nobody will finish the ranges it left (no ETA).
    const shown = await ws.run(['status', '--run', String(outcome.runId), '--json']);
    expectExit(shown, 0);
    const status = JSON.parse(shown.stdout);
    expect({ status: status.status, workers: status.workers, eta: status.targets[0].etaSeconds }).toEqual({ status: 'aborted', workers: [], eta: null });
    const human = await ws.run(['status', '--run', String(outcome.runId)]);
    expect(human.stdout).toContain('Workers: none holding a lease');
    expect(human.stdout).not.toContain('ETA');
  });

  describe('the compare-and-swap', () => {
    const readRow = async (id: number) =>
      (await db.current.pool.query<{ email: string; rv: string }>('SELECT email, xmin::text AS rv FROM people WHERE id = $1', [id])).rows[0]!;
    const emailOf = async (id: number) =>
      (await db.current.pool.query<{ email: string }>('SELECT email FROM people WHERE id = $1', [id])).rows[0]!.email;
    const setup = async () => {
      const target = await resolveTarget(db.current.pool, { schema: 'public', table: 'people', key: undefined, columns: ['email', 'mobno'], format: 'django-fernet-v1' }, { requireVersionColumns: true, registrySchema: 'pgrekey' });
      const version: number = (await db.current.pool.query(`SELECT version FROM pgrekey.keys WHERE key_id = 'new'`)).rows[0].version;
      const codec = await bothKeysCodec();
      return { target, version, ours: codec.encrypt('ours@example.com', { keyId: 'new' }), codec };
    };

    it('writes a row that is still the version read', async () => {
      const { target, version, ours } = await setup();
      const read = await readRow(101);
      const result = await db.current.pool.query(
        casUpdateSql(target, { keys: [['101']], rowVersions: [read.rv], values: [[ours], [null]], readDigests: [[null], [null]] }, version),
      );
      expect(result.rowCount).toBe(1);
      expect(await emailOf(101)).toBe(ours);
    });

    it('refuses to overwrite a value an application changed after it was read', async () => {
      const { target, version, ours, codec } = await setup();
      const read = await readRow(100);
      const applicationValue = codec.encrypt('changed-by-app@example.com', { keyId: 'new' });
      await db.current.pool.query('UPDATE people SET email = $1 WHERE id = 100', [applicationValue]);
      for (const readDigest of [null, digestOf(read.email)]) {
        const result = await db.current.pool.query(
          casUpdateSql(target, { keys: [['100']], rowVersions: [read.rv], values: [[ours], [null]], readDigests: [[readDigest], [null]] }, version),
        );
        expect(result.rowCount).toBe(0);
        expect(await emailOf(100)).toBe(applicationValue);
      }
    });

    it('a write to another column makes a first attempt lose, but not a re-examination (by digest)', async () => {
      const { target, version, ours } = await setup();
      const read = await readRow(102);
      await db.current.pool.query(`UPDATE people SET name = 'renamed' WHERE id = 102`);
      const lost = await db.current.pool.query(
        casUpdateSql(target, { keys: [['102']], rowVersions: [read.rv], values: [[ours], [null]], readDigests: [[null], [null]] }, version),
      );
      expect(lost.rowCount).toBe(0);
      expect(await emailOf(102)).toBe(read.email);
      const reexamined = await db.current.pool.query(
        casUpdateSql(target, { keys: [['102']], rowVersions: [read.rv], values: [[ours], [null]], readDigests: [[digestOf(read.email)], [null]] }, version),
      );
      expect(reexamined.rowCount).toBe(1);
      expect(await emailOf(102)).toBe(ours);
    });
  });
});
