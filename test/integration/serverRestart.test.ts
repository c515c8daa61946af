/**
 * The PostgreSQL server restarts under a long rotation (a minor-version
 * upgrade, a failover drill): fast shutdown, so every session gets FATAL
 * 57P01, then connections are refused until it is back. rotate rides through
 * or exits 69 (resumable) — never a crash or exit 70 — and the next run
 * finishes with every value rewritten exactly once, its ranges leaving
 * nothing that blocks it or confuses `status`. verify and migrate up (mid
 * CREATE INDEX CONCURRENTLY) exit 69 and run again cleanly. The server is a private one:
 * the shared test server must not restart under the other test files.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../support/embeddedPostgres.js';
import {
  countRewrites,
  expectAllUnderKey,
  expectEachRewrittenOnce,
  expectExit,
  prepareRotation,
  seedPeople,
  startCli,
  waitForStderr,
  type RotationWorkspace,
} from '../helpers/rotationFixture.js';

const ROWS = 20_000;
let root: string;
let server: EmbeddedServer;
let pool: pg.Pool;
let ws: RotationWorkspace;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-restart-'));
  await chmod(root, 0o755); // the server's own user must traverse it when we run as root
  server = await startEmbeddedPostgres({ dataDir: path.join(root, 'data'), settings: ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] });
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE rekey');
  await admin.end();
  const url = new URL(server.adminUrl);
  url.pathname = '/rekey';
  pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  // The test's own idle connections see the restart too.
  pool.on('error', () => undefined);
  ws = await prepareRotation(pool, url.toString(), ROWS);
  await countRewrites(pool);
}, 120_000);

afterAll(async () => {
  await ws?.cleanup();
  await pool?.end();
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** Rows examined by the open run, as the ranges committed them. */
async function examined(): Promise<number> {
  const { rows } = await pool.query<{ n: number }>(`SELECT coalesce(sum(rows_examined), 0)::int AS n FROM pgrekey.ranges`);
  return rows[0]!.n;
}

it('a server restart mid-rotation: exit 0 or 69 (resumable), then the next run completes, each value rewritten once', async () => {
  const cli = await startCli(ws, ['rotate', '--workers', '3', '--crypto-threads', '2', '--batch-size', '200', '--max-rate', '4000', '--lease', '2s']);
  await waitForStderr(cli, /rotation run \d+/);
  while ((await examined()) < 2000 && cli.child.exitCode === null) await sleep(50);
  // Down for a while (longer than a batch's retries last), then back on the same port.
  await server.restart(() => sleep(3000));
  const first = await cli.done;
  expect(first.stderr).not.toMatch(/internal error|Unhandled/);
  expect(first.stderr).not.toMatch(/^\s+at /m);
  expect([0, 69, 75], first.stderr).toContain(first.code);

  // status right after: the run is resumable, and nothing in it claims a live worker for long.
  const status = await ws.run(['status', '--json']);
  expectExit(status, 0);

  const second = await ws.run(['rotate', '--lease', '2s', '--json']);
  expectExit(second, 0);
  expect(JSON.parse(second.stdout).status).toBe('succeeded');
  expect(await expectAllUnderKey(pool, 'new')).toBe(ROWS);
  await expectEachRewrittenOnce(pool, ROWS);
  const { rows } = await pool.query(`SELECT id, status, lease_owner FROM pgrekey.ranges WHERE status <> 'done' OR lease_owner IS NOT NULL`);
  expect(rows).toEqual([]);
  expectExit(await ws.run(['verify']), 0);
}, 240_000);

it('a server restart under a verify: exit 69 naming the shutdown, no stack trace; the next commands run as usual', async () => {
  // verify is caught mid-command: waiting behind a lock on its table when the server goes down.
  const locker = await pool.connect();
  await locker.query('BEGIN; LOCK TABLE people IN ACCESS EXCLUSIVE MODE');
  locker.on('error', () => undefined);
  const verify = await startCli(ws, ['verify']);
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'pg-rekey' AND wait_event_type = 'Lock'`,
    );
    if (rows[0]!.n > 0) break;
    await sleep(50);
  }
  await server.restart(() => sleep(3000));
  locker.release(true);
  const migrate = await ws.run(['migrate', 'status']);
  const verified = await verify.done;
  expect(verified.code, verified.stderr).toBe(69);
  expect(verified.stderr).toMatch(/database unavailable: .*\(SQLSTATE 57P01\)/);
  expect(verified.stderr).not.toMatch(/^\s+at /m);
  expectExit(migrate, 0);
  // A verify that died recorded nothing: the next one runs as usual.
  expectExit(await ws.run(['verify']), 0);
}, 120_000);

it('a server restart while migrate up builds an index CONCURRENTLY: exit 69, and the next migrate up leaves a valid index', async () => {
  await seedPeople(pool, 10, { table: 'accounts' });
  expectExit(await ws.run(['target', 'add', '--table', 'public.accounts', '--columns', 'email', '--format', 'django-fernet-v1']), 0);
  // An open snapshot in the database: CREATE INDEX CONCURRENTLY waits for it before it completes.
  const snapshot = await pool.connect();
  snapshot.on('error', () => undefined);
  await snapshot.query('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1');
  const migrate = await startCli(ws, ['migrate', 'up']);
  for (;;) {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_stat_activity WHERE query ILIKE 'CREATE INDEX CONCURRENTLY%' AND wait_event_type = 'Lock'`,
    );
    if (rows[0]!.n > 0) break;
    await sleep(50);
  }
  await server.restart(() => sleep(2000));
  snapshot.release(true);
  const first = await migrate.done;
  expect(first.code, first.stderr).toBe(69);
  expect(first.stderr).toMatch(/database unavailable: .*\(SQLSTATE 57P01\)/);
  expect(first.stderr).not.toMatch(/^\s+at /m);
  const second = await ws.run(['migrate', 'up']);
  expectExit(second, 0);
  const { rows } = await pool.query(
    `SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'public.accounts'::regclass ORDER BY 1`,
  );
  expect(rows.map((r: { relname: string }) => r.relname)).toContain('accounts_pkey');
  expect(rows).toHaveLength(2);
  expect(rows.every((r: { indisvalid: boolean }) => r.indisvalid)).toBe(true);
  expectExit(await ws.run(['migrate', 'status']), 0);
}, 120_000);
