/**
 * The reference workload for rotation tests: a `people` table whose email and
 * mobno hold django-fernet-v1 values under an "old" SECRET_KEY (every seventh
 * mobno NULL), a config with a new and the old key, and the target migration
 * applied through the CLI — the way a DBA sets it up.
 */
import type pg from 'pg';
import { afterEach, expect } from 'vitest';
import { createTestDatabase, type TestDatabase } from './database.js';
import { createDualKeyWorkspace, dualKeyCodec, plaintextsOf, seedPeople } from '../../support/referenceWorkload.js';
import { runCli, type CliResult } from './cli.js';
import { startOrJoinRun } from '../../src/rotation/planRun.js';
import type { RotationSettings } from '../../src/rotation/rotate.js';
import { resolveTarget, type ResolvedTarget } from '../../src/schema/resolveTarget.js';

export { NEW_SECRET, OLD_SECRET, plaintextsOf, seedPeople } from '../../support/referenceWorkload.js';

/** A codec with both keys (new primary): what the application would run in dual-key mode. */
export const bothKeysCodec = dualKeyCodec;

/** A working directory with a config file; `run` invokes the CLI there with the database and secrets. */
export interface RotationWorkspace {
  dir: string;
  env: Record<string, string>;
  run(args: string[], options?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  cleanup(): Promise<void>;
}

/** Writes a config (new key first, so it becomes primary when first registered) in a temp dir. */
export async function createWorkspace(databaseUrl: string, extra: Record<string, unknown> = {}): Promise<RotationWorkspace> {
  const ws = await createDualKeyWorkspace(databaseUrl, 'pg-rekey-test-', extra);
  return {
    ...ws,
    run: (args, options = {}) =>
      runCli(args, { cwd: ws.dir, env: { ...ws.env, ...options.env }, timeoutMs: options.timeoutMs ?? 120_000 }),
  };
}

/** Asserts a CLI call exited with `code`, showing its output when it did not. */
export function expectExit(result: CliResult, code: number): void {
  expect(result.code, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`).toBe(code);
}

/** Seeds people, then adds it as a target and migrates, through the CLI. */
export async function prepareRotation(pool: pg.Pool, databaseUrl: string, rows: number): Promise<RotationWorkspace> {
  await seedPeople(pool, rows);
  const ws = await createWorkspace(databaseUrl);
  expectExit(await ws.run(['migrate', 'up']), 0);
  expectExit(await ws.run(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']), 0);
  expectExit(await ws.run(['migrate', 'up']), 0);
  return ws;
}

/** Registers "old", rotates every value to "new" and passes `verify --without old`: the retire gate for "old" is open. */
export async function openRetireGate(ws: RotationWorkspace): Promise<void> {
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  expectExit(await ws.run(['rotate']), 0);
  expectExit(await ws.run(['verify', '--without', 'old']), 0);
}

/** Decrypts every row and checks it holds its original plaintexts under `keyId`, with a matching key version. */
export async function expectAllUnderKey(pool: pg.Pool, keyId: string, schema = 'pgrekey'): Promise<number> {
  const codec = await bothKeysCodec();
  const { rows } = await pool.query<{ id: string; email: string | null; mobno: string | null; ev: string | null; mv: string | null }>(
    `SELECT p.id, p.email, p.mobno, ek.key_id AS ev, mk.key_id AS mv
       FROM people p
       LEFT JOIN ${schema}.keys ek ON ek.version = p.email_key_version
       LEFT JOIN ${schema}.keys mk ON mk.version = p.mobno_key_version
      ORDER BY p.id`,
  );
  // One value: it decrypts to its plaintext under `keyId`, and its key-version column says so.
  const expectValue = (id: string, stored: string | null, version: string | null, plaintext: string) => {
    const decrypted = codec.decrypt(stored);
    expect({ id, plaintext: decrypted.plaintext, keyId: decrypted.keyId, version }).toEqual({ id, plaintext, keyId, version: keyId });
  };
  for (const row of rows) {
    const expected = plaintextsOf(Number(row.id));
    expectValue(row.id, row.email, row.ev, expected.email);
    if (expected.mobno === null) expect(row.mobno).toBeNull();
    else expectValue(row.id, row.mobno, row.mv, expected.mobno);
  }
  return rows.length;
}

/** A CLI process left running (to kill it, or to run several at once). */
export interface RunningCli {
  child: import('node:child_process').ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts the CLI in `ws` without waiting for it. */
export async function startCli(ws: RotationWorkspace, args: string[]): Promise<RunningCli> {
  const { spawn } = await import('node:child_process');
  const { CLI_PATH } = await import('./cli.js');
  const child = spawn(process.execPath, [CLI_PATH, ...args], {
    cwd: ws.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...ws.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done };
}

/**
 * Installs a test-only trigger that counts, per row and column, how many times
 * the encrypted value changed: "rewritten exactly once" is then a query.
 */
export async function countRewrites(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE rewrites (id bigint, col text, n int NOT NULL, PRIMARY KEY (id, col));
    CREATE FUNCTION count_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.email IS DISTINCT FROM OLD.email THEN
        INSERT INTO rewrites VALUES (NEW.id, 'email', 1) ON CONFLICT (id, col) DO UPDATE SET n = rewrites.n + 1;
      END IF;
      IF NEW.mobno IS DISTINCT FROM OLD.mobno THEN
        INSERT INTO rewrites VALUES (NEW.id, 'mobno', 1) ON CONFLICT (id, col) DO UPDATE SET n = rewrites.n + 1;
      END IF;
      RETURN NEW;
    END $$;
    CREATE TRIGGER count_rewrite AFTER UPDATE ON people FOR EACH ROW EXECUTE FUNCTION count_rewrite();`);
}

/** Asserts every non-NULL value of people was rewritten exactly once. */
export async function expectEachRewrittenOnce(pool: pg.Pool, rows: number): Promise<void> {
  const { rows: stats } = await pool.query<{ col: string; values: number; once: number }>(
    `SELECT col, count(*)::int AS values, count(*) FILTER (WHERE n = 1)::int AS once FROM rewrites GROUP BY col ORDER BY col`,
  );
  const mobnos = rows - Math.floor(rows / 7);
  expect(stats).toEqual([
    { col: 'email', values: rows, once: rows },
    { col: 'mobno', values: mobnos, once: mobnos },
  ]);
}

/** Resolves once the CLI's stderr has matched `pattern` (e.g. the run has started), or it exited. */
export function waitForStderr(cli: RunningCli, pattern: RegExp): Promise<void> {
  return new Promise((resolve) => {
    let seen = '';
    cli.child.stderr!.on('data', (d) => {
      seen += String(d);
      if (pattern.test(seen)) resolve();
    });
    void cli.done.then(() => resolve());
  });
}

/**
 * For a test file whose tests each need a database of their own: returns
 * `fresh(label, rows)`, which creates one with the reference workload prepared
 * for rotation; after each test the databases and workspaces it made are given back.
 */
export function useFreshRotations(): (label: string, rows: number) => Promise<{ db: TestDatabase; ws: RotationWorkspace }> {
  const databases: TestDatabase[] = [];
  const workspaces: RotationWorkspace[] = [];
  afterEach(async () => {
    for (const ws of workspaces.splice(0)) await ws.cleanup();
    for (const db of databases.splice(0)) await db.drop();
  });
  return async (label, rows) => {
    const db = await createTestDatabase(label);
    databases.push(db);
    const ws = await prepareRotation(db.pool, db.url, rows);
    workspaces.push(ws);
    return { db, ws };
  };
}

/**
 * What tests that drive runRotation directly (no CLI) need, once `keys add
 * new` and `keys add old` have run: people's email and mobno resolved as the
 * library resolves a target, the 'new' key's version, and the start (or join)
 * of a manual run rotating them from 'old' to 'new'.
 */
export async function peopleRunParts(pool: pg.Pool): Promise<{
  target: ResolvedTarget;
  version: number;
  startRun: (on?: pg.Pool) => ReturnType<typeof startOrJoinRun>;
}> {
  const target = await resolveTarget(
    pool,
    { schema: 'public', table: 'people', key: undefined, columns: ['email', 'mobno'], format: 'django-fernet-v1' },
    { requireVersionColumns: true, registrySchema: 'pgrekey' },
  );
  const version = (await pool.query<{ version: number }>(`SELECT version FROM pgrekey.keys WHERE key_id = 'new'`)).rows[0]!.version;
  const startRun = (on: pg.Pool = pool) =>
    startOrJoinRun(
      on,
      'pgrekey',
      {
        targetKeyId: 'new',
        sourceKeyIds: ['old'],
        columns: ['public.people.email', 'public.people.mobno'],
        trigger: 'manual',
        reason: undefined,
        actor: { osUser: 'test', host: 'test' },
        options: {},
      },
      [target],
    );
  return { target, version, startRun };
}

/** Settings for tests that call runRotation directly: small batches, one worker, the CLI's timeouts; `over` wins. */
export const rotationSettings = (over: Partial<RotationSettings> = {}): RotationSettings => ({
  batchSize: 100,
  workers: 1,
  leaseMs: 30_000,
  lockTimeoutMs: 5000,
  statementTimeoutMs: 60_000,
  onError: 'continue',
  ...over,
});
