/**
 * The target table changing under a running rotation: renamed, dropped, its
 * key-version column or its column's type changed by another session. The
 * rotate stops with a clear error that names the table and says what to do
 * (exit 2, never 70 "a bug in pg-rekey"), keeps every batch it committed, and
 * writes nowhere else; once the table is back, the next rotate resumes the run.
 *
 * Staged at a batch boundary: the test holds a row lock that the second batch's
 * compare-and-swap waits for, queues the DDL behind that batch, then lets go —
 * the DDL runs between the second batch's commit and the third batch's read.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TargetError } from '../../src/errors.js';
import { runRotation } from '../../src/rotation/rotate.js';
import type { BatchTransformer } from '../../src/rotation/rotateRange.js';
import { transformBatch } from '../../src/rotation/transformBatch.js';
import { waitForLockWait } from '../helpers/database.js';
import { bothKeysCodec, expectAllUnderKey, expectExit, startCli, useFreshRotations, peopleRunParts } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

describe('a target table renamed while rotate runs', () => {
  it('stops the rotate with exit 2 naming the table; the run stays open and resumes once the table is back', async () => {
    const { db, ws } = await fresh('renamed_mid_run', 3000);
    const holder = await db.pool.connect();
    let ddl: Promise<unknown> | undefined;
    try {
      // Row 150 is in the second batch of the first range (ids from 1, batches of 100).
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM people WHERE id = 150 FOR UPDATE');
      const cli = await startCli(ws, ['rotate', '--workers', '1', '--batch-size', '100', '--lock-timeout', '60s']);
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: cli.done });
      ddl = db.pool.query('ALTER TABLE people RENAME TO people_renamed');
      await waitForLockWait(db.pool, 'ALTER TABLE people RENAME%', { until: ddl });
      await holder.query('COMMIT');
      await ddl;
      const result = await cli.done;
      expect({ code: result.code, stderr: result.stderr }).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(/public\.people .*changed while .*dropped, renamed or altered.*pg-rekey rotate/s),
      });
      expect(result.stderr).not.toContain('internal error');
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    // The two batches committed before the rename are kept; nothing else was written.
    const kept = await db.pool.query(`SELECT count(*)::int AS n FROM people_renamed WHERE email_key_version IS NOT NULL`);
    expect(kept.rows[0]).toEqual({ n: 200 });
    const status = await ws.run(['status', '--json']);
    expectExit(status, 0);
    expect(JSON.parse(status.stdout)).toMatchObject({ status: 'stopped' });

    await db.pool.query('ALTER TABLE people_renamed RENAME TO people');
    const resumed = await ws.run(['rotate']);
    expectExit(resumed, 0);
    expect(resumed.stderr).toContain('Joined rotation run');
    await expectAllUnderKey(db.pool, 'new');
  }, 120_000);
});

describe('a key-version column dropped between a batch\'s read and its write', () => {
  it('fails the compare-and-swap with a TargetError naming the table, and the batch writes nothing', async () => {
    const { db, ws } = await fresh('kv_dropped_mid_batch', 300);
    expectExit(await ws.run(['keys', 'add', 'new']), 0);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
    const { target, version, startRun } = await peopleRunParts(db.pool);
    const codec = await bothKeysCodec();
    const run = await startRun();
    // What the target migration's down does, from another host, while the first batch is in the crypto step.
    const dropping: BatchTransformer = async (_t, batch) => {
      await db.pool.query('ALTER TABLE people DROP COLUMN mobno_key_version CASCADE');
      return transformBatch(batch, { codec, targetKeyId: 'new', targetVersion: version });
    };
    const rotating = runRotation({
      pool: db.pool, schema: 'pgrekey', runId: run.id, targetVersion: version, targets: [target], transform: dropping, owner: 'p',
      settings: { batchSize: 100, workers: 1, leaseMs: 30_000, lockTimeoutMs: 5000, statementTimeoutMs: 60_000, onError: 'continue' },
    });
    await expect(rotating).rejects.toBeInstanceOf(TargetError);
    await expect(rotating).rejects.toThrow(/public\.people changed while this rotation ran: .*mobno_key_version.*\(SQLSTATE 42703\)/);
    const written = await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`);
    expect(written.rows[0]).toEqual({ n: 0 });
  }, 120_000);
});

describe('the only target table dropped while its rotation is stopped', () => {
  it('rotate --abandon-open-run, with the target removed from the config, ends the run (exit 0) instead of leaving it open for good', async () => {
    const { db, ws } = await fresh('dropped_while_stopped', 3000);
    expectExit(await ws.run(['keys', 'add', 'old']), 0);
    expectExit(await ws.run(['rotate', '--batch-size', '50', '--max-rate', '500', '--max-duration', '1s']), 75);
    await db.pool.query('DROP TABLE people');
    // The table is gone for good: the DBA removes it from the config.
    const configPath = path.join(ws.dir, 'pg-rekey.config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, unknown>;
    await writeFile(configPath, JSON.stringify({ ...config, targets: [] }));

    const abandoned = await ws.run(['rotate', '--abandon-open-run', '--reason', 'people was dropped', '--json']);
    expectExit(abandoned, 0);
    const run = await db.pool.query(`SELECT id::int, status, summary->>'abandonReason' AS reason FROM pgrekey.runs WHERE kind = 'rotate' ORDER BY id`);
    expect(run.rows).toEqual([{ id: expect.any(Number), status: 'aborted', reason: 'people was dropped' }]);
    expect(JSON.parse(abandoned.stdout)).toMatchObject({ status: 'abandoned', runId: run.rows[0].id });
    // Nothing is left open: the retire gate no longer names a rotation run.
    const retire = await ws.run(['keys', 'retire', 'old']);
    expect(retire.stdout).not.toMatch(/rotation run \d+ is unfinished/);
  }, 120_000);
});

describe('a target table dropped while rotate starts, before a run exists', () => {
  it('while its "anything to do?" check waits for the table: exit 2 naming the table, no run started', async () => {
    const { db, ws } = await fresh('dropped_at_start', 500);
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
      const cli = await startCli(ws, ['rotate']);
      await waitForLockWait(db.pool, '%SELECT EXISTS (SELECT 1 FROM %people%', { until: cli.done });
      await holder.query('DROP TABLE people');
      await holder.query('COMMIT');
      const result = await cli.done;
      expect({ code: result.code, stderr: result.stderr }).toMatchObject({
        code: 2,
        stderr: expect.stringMatching(/public\.people changed while this rotation started: .*\(SQLSTATE 42P01\).*no run was started.*pg-rekey rotate/is),
      });
    } finally {
      await holder.query('ROLLBACK').catch(() => undefined);
      holder.release();
    }
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM pgrekey.runs WHERE kind = 'rotate'`)).rows[0]).toEqual({ n: 0 });
  }, 120_000);
});
