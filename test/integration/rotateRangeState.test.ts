/**
 * What a range worker knows commits with its batch: rows that lost the
 * compare-and-swap and wait to be read again survive a stop, a crash or a
 * takeover; a range is not done while such rows are left; a batch retried
 * after its COMMIT's reply was lost does not count twice; a batch in flight
 * when its lease was taken over, or when its run was abandoned, commits
 * nothing. Driven through the library (runRotation) so the races can be
 * staged exactly.
 */
import type pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { RunConflictError } from '../../src/errors.js';
import { startOrJoinRun } from '../../src/rotation/planRun.js';
import { claimRangeSql, releaseRangeSql, selectRunProgressSql, type ClaimedRange } from '../../src/rotation/rangesSql.js';
import { runRotation, type RotationOutcome } from '../../src/rotation/rotate.js';
import { readRunStatus } from '../../src/rotation/runStatus.js';
import { describeRecords, listHistory } from '../../src/schema/history.js';
import type { BatchTransformer } from '../../src/rotation/rotateRange.js';
import { transformBatch } from '../../src/rotation/transformBatch.js';
import type { ResolvedTarget } from '../../src/schema/resolveTarget.js';
import { bothKeysCodec, countRewrites, expectAllUnderKey, expectEachRewrittenOnce, expectExit, useFreshRotations, peopleRunParts, rotationSettings as settings } from '../helpers/rotationFixture.js';
import { waitForLockWait } from '../helpers/database.js';

const fresh = useFreshRotations();


/** A database of `rows` people with both keys registered, and what runRotation needs for it. */
async function rotationOf(label: string, rows: number) {
  const { db, ws } = await fresh(label, rows);
  expectExit(await ws.run(['keys', 'add', 'new']), 0);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  const { target, version, startRun } = await peopleRunParts(db.pool);
  const codec = await bothKeysCodec();
  const transform: BatchTransformer = async (_t, batch) => transformBatch(batch, { codec, targetKeyId: 'new', targetVersion: version });
  const rotation = { schema: 'pgrekey', targetVersion: version, targets: [target] };
  return { db, target, transform, startRun, rotation };
}

/** `rotate --to old --abandon-open-run`: abandons the open run (waiting for its batches in flight) and starts a rollback run. */
const emergencyRollback = (pool: pg.Pool, target: ResolvedTarget) =>
  startOrJoinRun(
    pool,
    'pgrekey',
    {
      targetKeyId: 'old',
      sourceKeyIds: ['new'],
      columns: ['public.people.email', 'public.people.mobno'],
      trigger: 'emergency',
      reason: 'the new key never reached the app hosts',
      actor: { osUser: 'test', host: 'test' },
      options: {},
      abandonOpenRun: true,
    },
    [target],
  );

/** The application renames row `id` (another column): a rotation that read the row before loses its compare-and-swap. */
const renameRow = (pool: pg.Pool, id: number) => pool.query(`UPDATE people SET name = name || '!' WHERE id = $1`, [id]);

describe('rows waiting to be read again', () => {
  it('survive a stop: the resumed run rotates the row that lost the race', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_stop', 2000);
    await countRewrites(db.pool);
    const run = await startRun();
    const stop = new AbortController();
    let raced = false;
    // The application renames row 1 between the first batch's read and its write;
    // the stop (SIGTERM, --max-duration) arrives during that batch.
    const racing: BatchTransformer = async (t, batch) => {
      if (!raced) {
        raced = true;
        await renameRow(db.pool, 1);
      }
      return transform(t, batch);
    };
    const first = await runRotation({
      pool: db.pool, ...rotation, runId: run.id, transform: racing, settings: settings(), owner: 'first', signal: stop.signal,
      onBatch: () => stop.abort(),
    });
    expect(first.status).toBe('stopped');
    const waiting = await db.pool.query(`SELECT recheck FROM pgrekey.ranges WHERE run_id = $1 AND recheck <> '[]'`, [run.id]);
    expect(waiting.rows).toEqual([{ recheck: [['1']] }]);
    const shown = await readRunStatus(db.pool, 'pgrekey', run.id);
    expect(shown!.targets[0]!.ranges.map((r) => r.toReread)).toContain(1);

    expect((await startRun()).id).toBe(run.id);
    const resumed = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform, settings: settings(), owner: 'resumed' });
    expect(resumed).toMatchObject({ status: 'succeeded', conflicted: 0 });
    await expectAllUnderKey(db.pool, 'new');
    await expectEachRewrittenOnce(db.pool, 2000);
  }, 120_000);

  it('keep their range open: a worker that stalls re-reading them is taken over, and nothing is left behind', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_takeover', 2000);
    const run = await startRun();
    let calls = 0;
    let unstall!: () => void;
    const stalled = new Promise<void>((resolve) => (unstall = resolve));
    let reexamining!: () => void;
    const atReexamination = new Promise<void>((resolve) => (reexamining = resolve));
    // Host 1: a batch larger than its range, with row 1 losing the race; then
    // its re-examination stalls (a long GC pause, a frozen VM) past the lease.
    const stalling: BatchTransformer = async (t, batch) => {
      calls++;
      if (calls === 1) await renameRow(db.pool, 1);
      if (calls === 2) {
        reexamining();
        await stalled;
      }
      return transform(t, batch);
    };
    const lease = { leaseMs: 1500 };
    const host1 = runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: stalling, settings: settings({ batchSize: 5000, ...lease }), owner: 'host1' });
    await atReexamination;
    // Host 2 does the other ranges, then waits for host 1's range: it is not
    // done (row 1 waits), so host 2 takes it over once the lease expires.
    const host2 = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform, settings: settings({ batchSize: 5000, ...lease }), owner: 'host2' });
    expect(host2).toMatchObject({ status: 'succeeded', conflicted: 0 });
    unstall();
    // Host 1's late batch is refused (its lease is gone) and it ends quietly.
    expect((await host1).status).toBe('succeeded');
    await expectAllUnderKey(db.pool, 'new');
  }, 120_000);

  it('are given up after three re-examinations, counted as conflicts with the batch that gave up', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_give_up', 300);
    const run = await startRun();
    // The application rewrites row 7's email (with another row's ciphertext,
    // a different one each time) before every write of ours.
    let n = 0;
    const hammering: BatchTransformer = async (t, batch) => {
      n++;
      await db.pool.query(`UPDATE people SET email = (SELECT email FROM people WHERE id = 100 + $1) WHERE id = 7`, [n]);
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: hammering, settings: settings(), owner: 'p' });
    expect(outcome).toMatchObject({ status: 'succeeded', conflicted: 1, examined: 300 + 3 });
    const left = await db.pool.query(`SELECT id FROM people WHERE email_key_version IS DISTINCT FROM $1`, [rotation.targetVersion]);
    expect(left.rows).toEqual([{ id: '7' }]);
    // status and history say the "succeeded" run left that row, not only rotate's exit 75 did.
    const shown = await readRunStatus(db.pool, 'pgrekey', run.id);
    expect(shown).toMatchObject({ status: 'succeeded', targets: [{ target: 'public.people', conflicted: 1 }] });
    const entry = (await listHistory(db.pool, 'pgrekey')).find((e) => e.id === run.id)!;
    expect({ conflicted: entry.rowsConflicted, records: describeRecords(entry) }).toEqual({ conflicted: 1, records: '299/303, 1 conflicts left' });
  }, 120_000);
});

describe('a row read again after losing a compare-and-swap', () => {
  it('has its failures and NULL values counted once, not once per read', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_counted_once', 300);
    // Row 8: a corrupted email beside a good mobno. Row 7: a good email beside a NULL mobno.
    await db.pool.query(`UPDATE people SET email = 'FERNET_V1:corrupted' WHERE id = 8`);
    const run = await startRun();
    // The application renames both rows between the first batch's read and its
    // write: each loses its compare-and-swap and is read again.
    let raced = false;
    const racing: BatchTransformer = async (t, batch) => {
      if (!raced) {
        raced = true;
        await db.pool.query(`UPDATE people SET name = name || '!' WHERE id IN (7, 8)`);
      }
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: racing, settings: settings(), owner: 'p' });
    const nulls = (await db.pool.query(`SELECT count(*)::int AS n FROM people WHERE mobno IS NULL`)).rows[0].n;
    expect(outcome).toMatchObject({ status: 'failed', examined: 300 + 2, failed: 1, skipped: nulls, conflicted: 0 });
    const failures = await db.pool.query(`SELECT row_key, column_name, reason FROM pgrekey.failures WHERE run_id = $1`, [run.id]);
    expect(failures.rows).toEqual([{ row_key: { id: '8' }, column_name: 'email', reason: 'malformed' }]);
    const recorded = await db.pool.query(`SELECT rows_failed::int AS failed, rows_skipped::int AS skipped FROM pgrekey.runs WHERE id = $1`, [run.id]);
    expect(recorded.rows).toEqual([{ failed: 1, skipped: nulls }]);
    expect((await readRunStatus(db.pool, 'pgrekey', run.id))!.targets[0]!.failures).toEqual({ email: { malformed: 1 } });
  }, 120_000);
});

describe('a row whose other columns the application keeps updating', () => {
  it('is rotated when re-examined (its value is compared, not its row version), not given up', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_renamed', 300);
    const run = await startRun();
    // Before every write of ours the application renames row 7; its encrypted columns stay as they are.
    const renaming: BatchTransformer = async (t, batch) => {
      await renameRow(db.pool, 7);
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: renaming, settings: settings(), owner: 'p' });
    // Row 7 lost its first compare-and-swap and won its first re-examination.
    expect(outcome).toMatchObject({ status: 'succeeded', conflicted: 0, examined: 300 + 1 });
    await expectAllUnderKey(db.pool, 'new');
  }, 120_000);

  it('are read again with the built-in unnest, whatever look-alike the search_path offers', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_unnest', 300);
    // In public, on the default search_path ("$user", public): for a text[] it is a more
    // exact match than pg_catalog.unnest(anyarray), so an unqualified call ran it.
    await db.pool.query(`CREATE FUNCTION public.unnest(text[]) RETURNS SETOF text LANGUAGE sql AS $$ SELECT NULL::text WHERE false $$`);
    const run = await startRun();
    const renaming: BatchTransformer = async (t, batch) => {
      await renameRow(db.pool, 7);
      return transform(t, batch);
    };
    // A fresh pool, so every session of the rotation starts with the function in place.
    const pool = createPool(db.url, { max: 4 });
    try {
      const outcome = await runRotation({ pool, ...rotation, runId: run.id, transform: renaming, settings: settings(), owner: 'p' });
      expect(outcome).toMatchObject({ status: 'succeeded', conflicted: 0, examined: 300 + 1 });
    } finally {
      await pool.end();
    }
    await expectAllUnderKey(db.pool, 'new');
  }, 120_000);
});

/**
 * Loses the reply to one COMMIT of a transaction on `pool` (pool.connect(), as
 * withTransaction checks out a client): the first COMMIT while `when()` holds
 * reaches the server and commits, then its caller sees the socket reset.
 */
function loseOneCommitReply(pool: pg.Pool, when: () => boolean = () => true): { readonly injected: boolean } {
  const state = { injected: false };
  const connect = pool.connect.bind(pool) as () => Promise<pg.PoolClient>;
  (pool as unknown as { connect: (callback?: unknown) => unknown }).connect = async (callback?: unknown) => {
    if (callback) return (connect as (cb: unknown) => void)(callback); // pool.query's own path
    const client = await connect();
    const query = client.query.bind(client) as (...args: unknown[]) => Promise<unknown>;
    (client as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
      const reply = await query(...args);
      if (args[0] === 'COMMIT' && !state.injected && when()) {
        state.injected = true;
        throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
      }
      return reply;
    };
    return client;
  };
  return state;
}

describe('a batch whose COMMIT reply was lost', () => {
  it('is not applied or counted twice when retried', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lost_commit_reply', 1000);
    await db.pool.query(`UPDATE people SET email = 'left in plaintext' WHERE id = 5`);
    await countRewrites(db.pool);
    const pool = createPool(db.url);
    try {
      // The first COMMIT of a batch reaches the server; its reply "is lost" (the socket resets).
      const lost = loseOneCommitReply(pool);
      const run = await startRun();
      const outcome = await runRotation({ pool, ...rotation, runId: run.id, transform, settings: settings({ batchSize: 5000 }), owner: 'p' });
      expect(lost.injected).toBe(true);
      const failures = await db.pool.query(`SELECT row_key FROM pgrekey.failures WHERE run_id = $1`, [run.id]);
      expect({ examined: outcome.examined, failed: outcome.failed, failures: failures.rows }).toEqual({
        examined: 1000,
        failed: 1,
        failures: [{ row_key: { id: '5' } }],
      });
      const rewritten = await db.pool.query(`SELECT count(*)::int AS n FROM rewrites WHERE n <> 1`);
      expect(rewritten.rows[0]).toEqual({ n: 0 });
    } finally {
      await pool.end();
    }
  }, 120_000);

  it('when it is not its range\'s last, leaves the worker on its range: the same lease goes on to the next batch, the range ends in the same run', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lost_reply_mid_range', 300);
    await countRewrites(db.pool);
    const run = await startRun();
    const pool = createPool(db.url);
    try {
      // The range (one: 300 rows, batches of 100) as each batch is transformed.
      const seen: { batchesCommitted: number; owner: string | null; token: string }[] = [];
      const watching: BatchTransformer = async (t, batch) => {
        const { rows } = await db.pool.query<{ batchesCommitted: number; owner: string | null; token: string }>(
          `SELECT batches_committed::int AS "batchesCommitted", lease_owner AS owner, lease_token::text AS token
             FROM pgrekey.ranges WHERE run_id = $1`,
          [run.id],
        );
        seen.push(...rows);
        return transform(t, batch);
      };
      // The reply to the first batch's COMMIT is lost; two batches of rows are still to come.
      const lost = loseOneCommitReply(pool, () => seen.length === 1);
      // What the worker warns about. Should it think it lost its lease, the run
      // is stopped at once (it would otherwise sit out its own 30 s lease).
      const warnings: string[] = [];
      const stop = new AbortController();
      const logger = pino({ level: 'warn', base: undefined }, {
        write: (line: string) => {
          const { msg } = JSON.parse(line) as { msg: string };
          warnings.push(msg);
          if (msg.includes('lost the lease')) stop.abort();
        },
      });
      const outcome = await runRotation({
        pool, ...rotation, runId: run.id, transform: watching, settings: settings(), owner: 'p', logger, signal: stop.signal,
      });
      expect(lost.injected).toBe(true);
      // The lost reply is retried once; the retry finds the batch committed and the worker carries on.
      expect(warnings).toEqual(['transient database error, retrying']);
      // Every batch after the lost reply runs under the lease the range was claimed with, one batch further each time.
      const token = seen[0]!.token;
      expect(seen).toEqual([0, 1, 2, 3].map((batchesCommitted) => ({ batchesCommitted, owner: 'p', token })));
      expect(outcome).toMatchObject({ status: 'succeeded', examined: 300, changed: 300 });
      await expectAllUnderKey(db.pool, 'new');
      await expectEachRewrittenOnce(db.pool, 300);
    } finally {
      await pool.end();
    }
  }, 120_000);
});

describe('--on-error abort on a row being read again', () => {
  it('keeps the checkpoint where the keyset reached (it never moves back)', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('recheck_abort', 300);
    const run = await startRun();
    let raced = false;
    // The application overwrites row 1 with a value no key decrypts, between the first batch's read and write.
    const racing: BatchTransformer = async (t, batch) => {
      if (!raced) {
        raced = true;
        await db.pool.query(`UPDATE people SET email = 'not encrypted at all' WHERE id = 1`);
      }
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: racing, settings: settings({ onError: 'abort' }), owner: 'p' });
    expect(outcome.status).toBe('aborted');
    // The first batch (rows 1–100) committed its checkpoint; the second stopped at row 1, read again.
    const ranges = await db.pool.query(`SELECT checkpoint FROM pgrekey.ranges WHERE run_id = $1`, [run.id]);
    expect(ranges.rows).toEqual([{ checkpoint: ['100'] }]);
  }, 120_000);
});

describe('a batch in flight when its range was taken over', () => {
  it('commits nothing, neither values nor checkpoint; the rows are rotated once, by the new holder', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lease_taken_over', 300);
    await countRewrites(db.pool);
    const run = await startRun();
    let calls = 0;
    let stolen: { rangeId: number; ids: string[] } | undefined;
    let leftBehind: { batchesCommitted: number; rotated: number } | undefined;
    // The first batch stalls past its lease (a GC pause, a frozen VM) while
    // another worker claims its range; the worker's next batch (after the
    // stalled one's commit was refused) looks at what that one left.
    const stalling: BatchTransformer = async (t, batch) => {
      calls++;
      if (calls === 1) {
        await db.pool.query(`UPDATE pgrekey.ranges SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1 AND status = 'running'`, [run.id]);
        // The thief's own lease is 1 ms: it "dies" at once, so this worker may take the range back.
        const thief = (await db.pool.query<ClaimedRange>(claimRangeSql('pgrekey', run.id, 'thief', 1))).rows[0]!;
        stolen = { rangeId: thief.id, ids: batch.keys[0]! };
      }
      if (calls === 2) {
        const range = await db.pool.query<{ n: number }>(`SELECT batches_committed::int AS n FROM pgrekey.ranges WHERE id = $1`, [stolen!.rangeId]);
        const rotated = await db.pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM people WHERE id = ANY($1::bigint[]) AND (email_key_version IS NOT NULL OR mobno_key_version IS NOT NULL)`,
          [stolen!.ids],
        );
        leftBehind = { batchesCommitted: range.rows[0]!.n, rotated: rotated.rows[0]!.n };
      }
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: stalling, settings: settings(), owner: 'p' });
    expect(stolen?.ids).toHaveLength(100);
    expect(leftBehind).toEqual({ batchesCommitted: 0, rotated: 0 });
    // The refused batch is not counted; the rows it had read are counted once, when read again.
    expect(outcome).toMatchObject({ status: 'succeeded', examined: 300, changed: 300, conflicted: 0 });
    await expectAllUnderKey(db.pool, 'new');
    await expectEachRewrittenOnce(db.pool, 300);
  }, 120_000);
});

describe('a run abandoned while a batch of it is in flight', () => {
  it('commits nothing more: its worker stops with a run conflict and no value moves to its target key', async () => {
    const { db, target, transform, startRun, rotation } = await rotationOf('abandoned_in_flight', 300);
    const run = await startRun();
    let rollbackRunId: number | undefined;
    // An emergency rollback (rotate --to old --abandon-open-run) starts between the first batch's read and its write.
    const racing: BatchTransformer = async (t, batch) => {
      rollbackRunId ??= (await emergencyRollback(db.pool, target)).id;
      return transform(t, batch);
    };
    await expect(
      runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: racing, settings: settings(), owner: 'p' }),
    ).rejects.toBeInstanceOf(RunConflictError);
    expect(rollbackRunId).not.toBe(run.id);
    const moved = await db.pool.query(
      `SELECT count(*)::int AS n FROM people WHERE email_key_version = $1 OR mobno_key_version = $1`,
      [rotation.targetVersion],
    );
    expect(moved.rows[0]).toEqual({ n: 0 });
    const committed = await db.pool.query(`SELECT coalesce(sum(batches_committed), 0)::int AS n FROM pgrekey.ranges WHERE run_id = $1`, [run.id]);
    expect(committed.rows[0]).toEqual({ n: 0 });
  }, 120_000);
});

describe('abandoning a run while a batch of it waits for a row lock', () => {
  it('waits for that batch, and the abandoned run records the totals its ranges reached, that batch included', async () => {
    const { db, target, transform, startRun, rotation } = await rotationOf('abandon_waits', 300);
    const run = await startRun();
    const holder = await db.pool.connect();
    try {
      // The application holds row 50: the first batch's compare-and-swap UPDATE waits for it (no lock timeout).
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM people WHERE id = 50 FOR UPDATE');
      const rotating = runRotation({ pool: db.pool, ...rotation, runId: run.id, transform, settings: settings({ lockTimeoutMs: 0 }), owner: 'p' });
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: rotating });
      const abandoning = emergencyRollback(db.pool, target);
      // The rollback must wait for the batch in flight (the batch holds a share lock on its run's row).
      await waitForLockWait(db.pool, '%FROM "pgrekey".runs%FOR UPDATE%', { until: abandoning });
      await holder.query('COMMIT');
      expect((await abandoning).id).not.toBe(run.id);
      await expect(rotating).rejects.toBeInstanceOf(RunConflictError);
    } finally {
      holder.release();
    }
    const { rows } = await db.pool.query<{ recorded: number; ranges: number }>(
      `SELECT r.rows_examined::int AS recorded, (SELECT sum(g.rows_examined)::int FROM pgrekey.ranges g WHERE g.run_id = r.id) AS ranges
         FROM pgrekey.runs r WHERE r.id = $1`,
      [run.id],
    );
    expect(rows[0]!.ranges).toBeGreaterThan(0);
    expect(rows[0]!.recorded).toBe(rows[0]!.ranges);
  }, 120_000);
});

describe('a range worker', () => {
  it('renews its lease with every batch it commits', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lease_renewed', 300);
    const run = await startRun();
    const seen: { rangeId: number; expiresUs: bigint }[] = [];
    const watching: BatchTransformer = async (t, batch) => {
      const { rows } = await db.pool.query<{ id: number; us: string }>(
        `SELECT id::int, (extract(epoch FROM lease_expires_at) * 1000000)::bigint::text AS us FROM pgrekey.ranges WHERE run_id = $1 AND status = 'running'`,
        [run.id],
      );
      seen.push({ rangeId: rows[0]!.id, expiresUs: BigInt(rows[0]!.us) });
      return transform(t, batch);
    };
    const outcome = await runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: watching, settings: settings(), owner: 'p' });
    expect(outcome.status).toBe('succeeded');
    // Before each later batch of the same range, its lease runs out later than before the batch before.
    const pairs = seen.slice(1).map((after, i) => ({ before: seen[i]!, after })).filter((p) => p.before.rangeId === p.after.rangeId);
    expect(pairs.length).toBeGreaterThan(0);
    expect(pairs.filter((p) => p.after.expiresUs <= p.before.expiresUs)).toEqual([]);
  }, 120_000);
});

describe('a worker that stops after its range was taken over', () => {
  it('releases nothing: the range stays leased to the worker that took it over, which finishes it', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('release_after_takeover', 300);
    await countRewrites(db.pool);
    const run = await startRun();
    /** The range's lease as the database holds it (one range: 300 rows). */
    const leaseNow = async () =>
      (await db.pool.query<{ status: string; owner: string | null; token: string; expires: string | null }>(
        `SELECT status, lease_owner AS owner, lease_token::text AS token, lease_expires_at::text AS expires
           FROM pgrekey.ranges WHERE run_id = $1`,
        [run.id],
      )).rows;
    // Worker B pauses in its first batch, holding the range it took over.
    let bHolds!: () => void;
    const bHoldsRange = new Promise<void>((resolve) => (bHolds = resolve));
    let resumeB!: () => void;
    const bPaused = new Promise<void>((resolve) => (resumeB = resolve));
    let bCalls = 0;
    const pausingB: BatchTransformer = async (t, batch) => {
      if (++bCalls === 1) {
        bHolds();
        await bPaused;
      }
      return transform(t, batch);
    };
    const poolA = createPool(db.url);
    let hostB: Promise<RotationOutcome> | undefined;
    try {
      // Worker A is stopped after its first batch. On its way to release the
      // range it stalls past its lease (a GC pause), and B takes the range over.
      const releaseText = releaseRangeSql('pgrekey', { id: 0, leaseToken: '' }).text;
      let tokenA: string | undefined;
      let heldByB: Awaited<ReturnType<typeof leaseNow>> | undefined;
      const query = poolA.query.bind(poolA) as (...args: unknown[]) => Promise<unknown>;
      (poolA as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
        if ((args[0] as { text?: unknown }).text === releaseText && hostB === undefined) {
          tokenA = (await leaseNow())[0]!.token;
          await db.pool.query(`UPDATE pgrekey.ranges SET lease_expires_at = now() - interval '1 second' WHERE run_id = $1`, [run.id]);
          hostB = runRotation({ pool: db.pool, ...rotation, runId: run.id, transform: pausingB, settings: settings(), owner: 'B' });
          await Promise.race([bHoldsRange, hostB]);
          heldByB = await leaseNow();
        }
        return query(...args);
      };
      const stopA = new AbortController();
      const a = await runRotation({
        pool: poolA, ...rotation, runId: run.id, transform, settings: settings(), owner: 'A', signal: stopA.signal,
        onBatch: () => stopA.abort(),
      });
      const afterA = await leaseNow();
      resumeB();
      const b = await hostB!;

      expect(a).toMatchObject({ status: 'stopped', changedHere: 100 });
      expect(tokenA).toBeDefined();
      expect(heldByB).toEqual([expect.objectContaining({ status: 'running', owner: 'B' })]);
      expect(heldByB![0]!.token).not.toBe(tokenA);
      // A's release (with its old token) left B's lease exactly as it was: owner, token, expiry.
      expect(afterA).toEqual(heldByB);
      expect(b).toMatchObject({ status: 'succeeded', examined: 300, changed: 300, changedHere: 200 });
      await expectAllUnderKey(db.pool, 'new');
      await expectEachRewrittenOnce(db.pool, 300);
    } finally {
      resumeB();
      await hostB?.catch(() => undefined);
      await poolA.end();
    }
  }, 120_000);
});

describe('more workers than ranges (--workers above the number of ranges)', () => {
  it('the idle ones wait for the busy one without Node warning of an event-listener leak', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('idle_workers', 50);
    const run = await startRun();
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
    process.on('warning', onWarning);
    const pool = createPool(db.url);
    try {
      // The 11 workers that find no range to claim ask how many ranges are open, then wait.
      const progressText = selectRunProgressSql('pgrekey', run.id).text;
      let progressReplies = 0;
      let allIdle!: () => void;
      const idle = new Promise<void>((resolve) => (allIdle = resolve));
      const query = pool.query.bind(pool) as (...args: unknown[]) => Promise<unknown>;
      (pool as unknown as { query: (...args: unknown[]) => Promise<unknown> }).query = async (...args: unknown[]) => {
        const reply = await query(...args);
        if ((args[0] as { text?: unknown }).text === progressText && ++progressReplies === 11) allIdle();
        return reply;
      };
      // The one range (50 rows) is held in its first batch until every idle worker has
      // had its reply and gone on to wait (the turn of the event loop after the last one).
      const holding: BatchTransformer = async (t, batch) => {
        await idle;
        await new Promise((resolve) => setImmediate(resolve));
        return transform(t, batch);
      };
      const stop = new AbortController();
      const outcome = await runRotation({
        pool, ...rotation, runId: run.id, transform: holding, settings: settings({ workers: 12 }), owner: 'p', signal: stop.signal,
      });
      expect(outcome).toMatchObject({ status: 'succeeded', examined: 50 });
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await pool.end();
    }
  }, 120_000);
});

describe('a batch blocked by an application row lock for longer than its lease', () => {
  it('is fenced when it finally commits after another process took its range over: each value rotated once, counted once', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lease_expires_blocked', 300);
    await countRewrites(db.pool);
    const run = await startRun();
    const app = await db.pool.connect();
    const poolB = createPool(db.url, { max: 4 });
    try {
      await app.query('BEGIN');
      await app.query('SELECT 1 FROM people WHERE id = 50 FOR UPDATE');
      // A waits with no lock timeout, its lease of 1 s running out; B takes the range over and waits behind A.
      const a = runRotation({ pool: db.pool, ...rotation, runId: run.id, transform, settings: settings({ lockTimeoutMs: 0, leaseMs: 1000 }), owner: 'A' });
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: a });
      const b = runRotation({ pool: poolB, ...rotation, runId: run.id, transform, settings: settings({ lockTimeoutMs: 0 }), owner: 'B' });
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { sessions: 2, until: b });
      await app.query('COMMIT');
      const [outcomeA, outcomeB] = await Promise.all([a, b]);
      // A's late batch was refused (its lease token was replaced): B did every row.
      expect(outcomeA.changedHere).toBe(0);
      expect(outcomeB).toMatchObject({ changedHere: 300, examined: 300, changed: 300, conflicted: 0 });
      expect([outcomeA.status, outcomeB.status]).toContain('succeeded');
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      app.release();
      await poolB.end();
    }
    await expectAllUnderKey(db.pool, 'new');
    await expectEachRewrittenOnce(db.pool, 300);
    const range = await db.pool.query(`SELECT status, rows_examined::int AS examined, rows_changed::int AS changed FROM pgrekey.ranges WHERE run_id = $1`, [run.id]);
    expect(range.rows).toEqual([{ status: 'done', examined: 300, changed: 300 }]);
  }, 120_000);
});

describe('a batch that waited on a row lock for longer than the lease', () => {
  it('renews the lease from its commit, not from when it began: the range is not free for the taking right after', async () => {
    const { db, transform, startRun, rotation } = await rotationOf('lease_from_commit', 300);
    const run = await startRun();
    const app = await db.pool.connect();
    let liveAfterFirstBatch: boolean | undefined;
    let calls = 0;
    const watching: BatchTransformer = async (t, batch) => {
      // Called for the second batch once the first has committed: how the first left the lease.
      if (++calls === 2) {
        const { rows } = await db.pool.query<{ live: boolean }>(
          `SELECT lease_expires_at > clock_timestamp() AS live FROM pgrekey.ranges WHERE run_id = $1`,
          [run.id],
        );
        liveAfterFirstBatch = rows[0]!.live;
      }
      return transform(t, batch);
    };
    try {
      await app.query('BEGIN');
      await app.query('SELECT 1 FROM people WHERE id = 50 FOR UPDATE');
      const rotating = runRotation({
        pool: db.pool, ...rotation, runId: run.id, transform: watching, settings: settings({ lockTimeoutMs: 0, leaseMs: 2000 }), owner: 'A',
      });
      await waitForLockWait(db.pool, 'UPDATE %people% AS t SET %', { until: rotating });
      // Hold the row until the blocked batch's transaction is older than its lease.
      const blockedFor = `SELECT count(*)::int AS n FROM pg_stat_activity
                           WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE 'UPDATE %people% AS t SET %'
                             AND clock_timestamp() - xact_start > interval '3 seconds'`;
      while ((await db.pool.query<{ n: number }>(blockedFor)).rows[0]!.n === 0) await new Promise((r) => setTimeout(r, 100));
      await app.query('COMMIT');
      expect(await rotating).toMatchObject({ status: 'succeeded', changed: 300 });
    } finally {
      await app.query('ROLLBACK').catch(() => undefined);
      app.release();
    }
    expect(liveAfterFirstBatch).toBe(true);
  }, 120_000);
});
