/**
 * A throwaway pg-rekey project for CLI tests: a temporary directory with a
 * config file, key secrets in environment variables, and a runner that calls
 * the built CLI against a given database with that config.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateKey } from '../../src/crypto/generateKey.js';
import { runCli, type CliResult } from '../helpers/cli.js';

/** A project directory and how to run the CLI in it. */
export interface TestProject {
  dir: string;
  configPath: string;
  migrationsDir: string;
  /** Secrets per key id (what the env variables hold). */
  secrets: Record<string, string>;
  env: Record<string, string>;
  /** Runs `pg-rekey <args> --config … --database-url …`. */
  cli(args: readonly string[], options?: { env?: Record<string, string>; timeoutMs?: number }): Promise<CliResult>;
  readConfig(): Promise<{ targets: { table: string; columns: string[]; format: string; key?: string[] }[] } & Record<string, unknown>>;
  writeConfig(config: Record<string, unknown>): Promise<void>;
  remove(): Promise<void>;
}

/** Creates a project with fernet keys `keyIds` (first = primary) and optional targets. */
export async function createProject(
  databaseUrl: string,
  options: { keyIds?: string[]; targets?: unknown[]; extra?: Record<string, unknown> } = {},
): Promise<TestProject> {
  const dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-cli-'));
  const configPath = path.join(dir, 'pg-rekey.config.json');
  const keyIds = options.keyIds ?? ['k1', 'k2'];
  const secrets = Object.fromEntries(keyIds.map((id) => [id, generateKey('fernet')]));
  const envName = (id: string) => `PGREKEY_TEST_KEY_${id.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const env = Object.fromEntries(keyIds.map((id) => [envName(id), secrets[id]!]));
  const config = {
    keys: keyIds.map((id) => ({ id, secret: `env:${envName(id)}` })),
    targets: options.targets ?? [],
    migrationsDir: 'migrations',
    ...options.extra,
  };
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  return {
    dir,
    configPath,
    migrationsDir: path.join(dir, 'migrations'),
    secrets,
    env,
    cli: (args, o = {}) =>
      runCli([...args, '--config', configPath, '--database-url', databaseUrl, '--log-level', 'warn'], {
        cwd: dir,
        env: { ...env, ...o.env },
        ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      }),
    readConfig: async () => JSON.parse(await readFile(configPath, 'utf8')),
    writeConfig: (c) => writeFile(configPath, `${JSON.stringify(c, null, 2)}\n`),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}

/** Parses the CLI's --json stdout, with the whole result in the message if it is not JSON. */
export function jsonOf<T = any>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`not JSON (exit ${result.code}):\n${result.stdout}\n--- stderr ---\n${result.stderr}`);
  }
}
