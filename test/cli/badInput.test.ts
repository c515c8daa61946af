/**
 * Bad input to the database commands: each must exit 2 (usage, config or key)
 * with a message that says what to do, and write nothing — no key
 * registration, no run, no changed value.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, useTestDatabase, type TestDatabase } from '../helpers/database.js';
import type { CliResult } from '../helpers/cli.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';
import { createProject, type TestProject } from './project.js';

const db = useTestDatabase('badinput');
let ws: RotationWorkspace;
const ROWS = 50;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
});
afterAll(() => ws?.cleanup());

/** Everything a command could write: registry, runs (with their options), failures and the stored values. */
async function databaseState(): Promise<string> {
  const { rows } = await db.current.pool.query<{ state: string }>(
    `SELECT concat_ws(' | ',
       (SELECT string_agg(concat_ws(',', version, key_id, fingerprint, state, is_primary), ';' ORDER BY version) FROM pgrekey.keys),
       (SELECT string_agg(concat_ws(',', id, kind, status, options::text), ';' ORDER BY id) FROM pgrekey.runs),
       (SELECT count(*) FROM pgrekey.failures),
       (SELECT md5(string_agg(concat_ws(',', email, mobno, email_key_version, mobno_key_version), ';' ORDER BY id)) FROM people)) AS state`,
  );
  return rows[0]!.state;
}

/** Runs `args`, expects exit 2 with `message` on stderr, and that the database did not change. */
async function expectRefused(args: string[], message: RegExp, options: { env?: Record<string, string> } = {}): Promise<CliResult> {
  const before = await databaseState();
  const result = await ws.run(args, options);
  expectExit(result, 2);
  expect(result.stderr, args.join(' ')).toMatch(message);
  expect(await databaseState(), `${args.join(' ')} wrote to the database`).toBe(before);
  return result;
}

describe('bad input exits 2 and writes nothing', () => {
  it('verify: --sample, --sample-percent and --chunk-rows out of range', async () => {
    await expectRefused(['verify', '--sample', '0'], /--sample/);
    await expectRefused(['verify', '--sample', 'abc'], /--sample/);
    await expectRefused(['verify', '--sample-percent', '200'], /--sample-percent/);
    await expectRefused(['verify', '--sample-percent', '0'], /--sample-percent/);
    await expectRefused(['verify', '--chunk-rows', 'abc'], /--chunk-rows/);
  });

  it('every numeric option refuses non-numbers, fractions and values below its minimum', async () => {
    const cases: [string[], string][] = [
      [['rotate', '--workers', 'abc'], '--workers'],
      [['rotate', '--workers', '0'], '--workers'],
      // Each worker is a connection, and no server takes more than 262143: a typo must not exhaust the memory.
      [['rotate', '--workers', '1000000000'], '--workers takes a whole number of at least 1 and at most 262143'],
      [['rotate', '--batch-size', 'abc'], '--batch-size'],
      [['rotate', '--batch-size', '1.5'], '--batch-size'],
      [['rotate', '--crypto-threads', 'abc'], '--crypto-threads'],
      [['rotate', '--crypto-threads', '-1'], '--crypto-threads'],
      // Each is a thread of tens of MiB: a typo must not start 100,000 of them.
      [['rotate', '--crypto-threads', '65'], '--crypto-threads takes a whole number of at least 0 and at most 64'],
      [['rotate', '--crypto-threads', '100000'], '--crypto-threads takes a whole number of at least 0 and at most 64'],
      [['rotate', '--max-rate', '-5'], '--max-rate'],
      [['rotate', '--max-rate', 'abc'], '--max-rate'],
      [['rotate', '--pause-ms', 'abc'], '--pause-ms'],
      [['rotate', '--pause-ms', '-1'], '--pause-ms'],
      [['rotate', '--dry-run', '--batch-size', 'abc'], '--batch-size'],
      [['rotate', '--workers'], 'workers'],
      [['status', '--run', 'abc'], '--run'],
      [['status', '--run', '1.5'], '--run'],
      [['verify', '--seed', 'abc'], '--seed'],
      [['verify', '--seed', '-1'], '--seed'],
      [['verify', '--sample', '10', '--seed', '1.5'], '--seed'],
      [['history', '--limit', 'abc'], '--limit'],
    ];
    for (const [args, flag] of cases) {
      const result = await expectRefused(args, new RegExp(flag));
      expect(result.stderr, args.join(' ')).not.toMatch(/internal error|SQLSTATE/);
    }
    // A lease renewed only at each batch's commit must outlast a batch.
    await expectRefused(['rotate', '--lease', '0s'], /--lease 0s: a lease must be at least 1s/);
    await expectRefused(['rotate', '--lease', '500ms'], /--lease 500ms: a lease must be at least 1s/);
    // A number given twice is ambiguous, not "the last one wins".
    await expectRefused(['rotate', '--workers', '2', '--workers', '3'], /--workers is given more than once/);
  });

  it('rotate durations beyond what the server takes are refused before a run is started', async () => {
    // PostgreSQL takes lock_timeout and statement_timeout up to 2147483647 ms; past that the
    // first batch failed as an "internal error" (exit 70), the run just planned left open.
    for (const flag of ['--lock-timeout', '--statement-timeout', '--lease']) {
      const result = await expectRefused(['rotate', flag, '1000h'], new RegExp(`${flag} 1000h: at most 2147483647 ms`));
      expect(result.stderr).not.toMatch(/internal error/);
    }
    await expectRefused(['rotate', '--lease', '99999999999999h'], /--lease 99999999999999h: at most/);
  });

  it('a config naming one table in two targets, spelt two ways, is refused', async () => {
    const config = JSON.parse(await readFile(path.join(ws.dir, 'pg-rekey.config.json'), 'utf8'));
    config.targets = [
      { table: 'public.people', columns: ['email'], format: 'django-fernet-v1' },
      { table: 'PEOPLE', columns: ['mobno'], format: 'django-fernet-v1' },
    ];
    await writeFile(path.join(ws.dir, 'twice.json'), JSON.stringify(config));
    // Both targets would plan ranges under the one name public.people: an internal error (exit 70) after registering keys.
    for (const command of [['rotate'], ['verify'], ['keys', 'list']]) {
      await expectRefused([...command, '--config', 'twice.json'], /targets\[1\]\.table: names public\.people, as targets\[0\] does — list all its columns in one target/);
    }
  });
});

describe('keys are checked before any is registered', () => {
  it('rotate --to and verify --without with an unknown key register nothing', async () => {
    // The workspace's registry is empty: a first rotate or verify would register both keys.
    expect((await db.current.pool.query('SELECT count(*)::int AS n FROM pgrekey.keys')).rows[0].n).toBe(0);
    await expectRefused(['rotate', '--to', 'nosuch'], /--to nosuch: key nosuch is not configured/);
    await expectRefused(['rotate', '--dry-run', '--to', 'nosuch'], /key nosuch is not configured/);
    await expectRefused(['verify', '--without', 'nosuch'], /--without nosuch: no such key/);
    // An empty --to is a mistake (an unset variable in a script), not "the primary".
    await expectRefused(['rotate', '--to', ''], /--to needs a key id/);
    await expectRefused(['rotate', '--to'], /--to needs a key id/);
    await expectRefused(['rotate', '--dry-run', '--to', ' '], /--to needs a key id/);
  });

  describe('a secret that is not a valid key for a target format', () => {
    let keyDb: TestDatabase;
    let project: TestProject;
    const MALFORMED = 'this-is-not-base64-at-all!';

    beforeAll(async () => {
      keyDb = await createTestDatabase('badkey');
      await keyDb.pool.query('CREATE TABLE public.tokens (id int PRIMARY KEY, token text)');
      project = await createProject(keyDb.url, { keyIds: ['k1', 'k2'] });
      for (const args of [['migrate', 'up'], ['target', 'add', '--table', 'tokens', '--columns', 'token', '--format', 'fernet'], ['migrate', 'up']]) {
        const r = await project.cli(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
      }
    });
    afterAll(async () => {
      await project?.remove();
      await keyDb?.drop();
    });

    const registryAndRuns = async () =>
      (await keyDb.pool.query(`SELECT (SELECT count(*) FROM pgrekey.keys)::int AS keys, (SELECT count(*) FROM pgrekey.runs)::int AS runs`)).rows[0];

    it('rotate, verify and keys promote exit 2 naming the key, register nothing, and the right secret still works', async () => {
      const malformed = { env: { PGREKEY_TEST_KEY_K2: MALFORMED } };
      for (const args of [['rotate'], ['verify'], ['keys', 'promote', 'k2']]) {
        const r = await project.cli(args, malformed);
        expect(r.code, `${args.join(' ')} exit ${r.code}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(/key k2: a fernet key must be 32 bytes/);
        expect(r.stderr.includes(MALFORMED), 'the secret was printed').toBe(false);
        expect(await registryAndRuns(), args.join(' ')).toEqual({ keys: 0, runs: 0 });
      }
      // Nothing was registered, so deploying the right secret is enough.
      const promoted = await project.cli(['keys', 'promote', 'k2']);
      expect(promoted.code, promoted.stderr).toBe(0);
    });
  });

  describe('keys registered before any target is configured', () => {
    // With no target there is no format to check a secret against, and a
    // registered fingerprint is permanent: a malformed secret registered then
    // would have the right one refused for good as "does not match".
    let keyDb: TestDatabase;
    let project: TestProject;
    const MALFORMED = 'not-a-fernet-key';

    beforeAll(async () => {
      keyDb = await createTestDatabase('nokeytargets');
      await keyDb.pool.query('CREATE TABLE public.tokens (id int PRIMARY KEY, token text)');
      project = await createProject(keyDb.url, { keyIds: ['k1', 'k2'] });
      expectExit(await project.cli(['migrate', 'up']), 0);
    });
    afterAll(async () => {
      await project?.remove();
      await keyDb?.drop();
    });

    const registry = async () => (await keyDb.pool.query(`SELECT key_id FROM pgrekey.keys ORDER BY version`)).rows.map((r) => r.key_id);

    it('keys add and keys promote exit 2 saying to run "pg-rekey target add" first, register nothing, and work once it ran', async () => {
      const malformed = { env: { PGREKEY_TEST_KEY_K2: MALFORMED } };
      for (const args of [['keys', 'add', 'k2'], ['keys', 'promote', 'k2'], ['keys', 'add', 'k2', '--json']]) {
        const r = await project.cli(args, malformed);
        expect(r.code, `${args.join(' ')} exit ${r.code}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toContain('pg-rekey target add');
        expect(r.stderr.includes(MALFORMED), 'the secret was printed').toBe(false);
        expect(await registry(), args.join(' ')).toEqual([]);
      }
      // Once the target says which format the keys are for, the malformed secret is caught…
      expectExit(await project.cli(['target', 'add', '--table', 'tokens', '--columns', 'token', '--format', 'fernet']), 0);
      expectExit(await project.cli(['migrate', 'up']), 0);
      const refused = await project.cli(['keys', 'add', 'k2'], malformed);
      expect(refused.code, refused.stderr).toBe(2);
      expect(refused.stderr).toMatch(/key k2: a fernet key must be 32 bytes/);
      // …and the right secret is registered.
      expectExit(await project.cli(['keys', 'add', 'k2']), 0);
      expect(await registry()).toEqual(['k2']);
    });

    it('rotate --abandon-open-run with no target configured registers no key', async () => {
      const config = await project.readConfig();
      await project.writeConfig({ ...config, targets: [] });
      const before = await registry();
      try {
        // An open rotation whose only table was taken out of the config.
        await keyDb.pool.query(`INSERT INTO pgrekey.runs (kind, targets, options, status) VALUES ('rotate', '{public.tokens.token}', '{}', 'running')`);
        const r = await project.cli(['rotate', '--abandon-open-run', '--reason', 'table dropped'], { env: { PGREKEY_TEST_KEY_K1: MALFORMED } });
        expectExit(r, 0);
        expect(r.stdout).toContain('Abandoned rotation run');
        expect(await registry()).toEqual(before);
      } finally {
        await project.writeConfig(config);
      }
    });
  });
});

