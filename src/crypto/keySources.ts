/**
 * Resolving a key's secret reference: `env:NAME`, `file:PATH`, `cmd:COMMAND`.
 *
 * Secrets are never written literally into config files, so anything else is
 * refused. Error messages name the key id and the problem (variable name, path,
 * exit status) but never the secret, and for commands never their output or
 * stderr: a failing secret helper may well print the secret or a token.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import { KeySourceError } from '../errors.js';

/** A key as written in config: an id and a secret reference. */
export interface KeyConfig {
  readonly id: string;
  readonly secret: string;
}

/** A key whose secret has been resolved. Keep it in-process: never log, store or send it. */
export interface ResolvedKey {
  readonly id: string;
  readonly secret: string;
}

/** Where references resolve: base directory of `file:` paths and `cmd:` runs, the environment, a command timeout. */
export interface ResolveOptions {
  /** Directory relative `file:` paths resolve against and `cmd:` runs in (default: the process's cwd). */
  readonly baseDir?: string;
  /** Environment for `env:` lookups and `cmd:` runs (default: process.env). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Milliseconds a `cmd:` may run before it is killed (default 30,000). */
  readonly commandTimeoutMs?: number;
}

const MAX_COMMAND_OUTPUT = 64 * 1024;

/** Resolves one secret reference for key `keyId`; rejects with KeySourceError. */
export async function resolveSecret(
  ref: string,
  options: ResolveOptions & { readonly keyId: string },
): Promise<string> {
  const { keyId } = options;
  const env = options.env ?? process.env;
  const baseDir = options.baseDir ?? process.cwd();
  if (ref.startsWith('env:')) return resolveEnv(keyId, ref.slice(4), env);
  if (ref.startsWith('file:')) return resolveFile(keyId, ref.slice(5), baseDir);
  if (ref.startsWith('cmd:')) {
    return resolveCommand(keyId, ref.slice(4), baseDir, env, options.commandTimeoutMs ?? 30_000);
  }
  throw new KeySourceError(
    keyId,
    `key ${keyId}: the secret must be a reference — env:NAME, file:PATH or cmd:COMMAND; literal secrets are refused so they never sit in a config file`,
  );
}

/** Resolves every key's reference (in parallel) and checks ids are unique. */
export async function resolveKeys(keys: readonly KeyConfig[], options: ResolveOptions = {}): Promise<ResolvedKey[]> {
  return Promise.all(
    keys.map(async (key) => ({ id: key.id, secret: await resolveSecret(key.secret, { ...options, keyId: key.id }) })),
  );
}

function resolveEnv(keyId: string, name: string, env: Readonly<Record<string, string | undefined>>): string {
  if (name.length === 0) throw new KeySourceError(keyId, `key ${keyId}: env: needs a variable name`);
  const value = env[name];
  if (value === undefined) throw new KeySourceError(keyId, `key ${keyId}: environment variable ${name} is not set`);
  // Used verbatim: the application reads the same variable without trimming.
  if (value.length === 0) throw new KeySourceError(keyId, `key ${keyId}: environment variable ${name} is empty`);
  return value;
}

async function resolveFile(keyId: string, path: string, baseDir: string): Promise<string> {
  if (path.length === 0) throw new KeySourceError(keyId, `key ${keyId}: file: needs a path`);
  const fullPath = resolvePath(baseDir, path);
  let text: string;
  try {
    text = await readFile(fullPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new KeySourceError(keyId, `key ${keyId}: cannot read secret file ${fullPath} (${code})`);
  }
  const secret = withoutTrailingLineBreaks(text);
  if (secret.trim().length === 0) throw new KeySourceError(keyId, `key ${keyId}: secret file ${fullPath} is empty`);
  assertNoSurroundingWhitespace(keyId, secret, `secret file ${fullPath}`);
  return secret;
}

/**
 * The secret a file or command holds: its text without the trailing line
 * breaks, as `$(cat file)` gives it to an application's environment.
 */
function withoutTrailingLineBreaks(text: string): string {
  return text.replace(/[\r\n]+$/, '');
}

/**
 * Refuses a secret that starts or ends with whitespace other than a final line
 * break: whether the application keeps or strips it cannot be known, and a
 * guess the other way would encrypt every value under a key the application
 * does not have. (A Django SECRET_KEY is any string, so nothing else catches it.)
 */
function assertNoSurroundingWhitespace(keyId: string, secret: string, where: string): void {
  if (secret.trim() !== secret) {
    throw new KeySourceError(
      keyId,
      `key ${keyId}: ${where} has whitespace before or after the secret: remove it (pg-rekey does not guess whether your application keeps it)`,
    );
  }
}

function resolveCommand(
  keyId: string,
  command: string,
  baseDir: string,
  env: Readonly<Record<string, string | undefined>>,
  timeoutMs: number,
): Promise<string> {
  if (command.trim().length === 0) return Promise.reject(new KeySourceError(keyId, `key ${keyId}: cmd: needs a command`));
  return new Promise((resolve, reject) => {
    // The command's text is not echoed in errors either: it may embed a token.
    const fail = (problem: string): void => reject(new KeySourceError(keyId, `key ${keyId}: the secret command ${problem}`));
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: baseDir,
      env: env as NodeJS.ProcessEnv,
      // stderr is discarded, not inherited: the library never prints.
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: timeoutMs,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_COMMAND_OUTPUT) {
        tooLarge = true;
        child.kill('SIGKILL');
      } else chunks.push(chunk);
    });
    child.on('error', (err) => fail(`could not start (${(err as NodeJS.ErrnoException).code ?? 'unknown error'})`));
    child.on('close', (status, signal) => {
      const output = Buffer.concat(chunks);
      chunks.length = 0;
      if (tooLarge) return fail(`printed more than ${MAX_COMMAND_OUTPUT} bytes`);
      if (signal !== null) return fail(`was killed by ${signal}${signal === 'SIGTERM' ? ` (timeout ${timeoutMs} ms?)` : ''}`);
      if (status !== 0) return fail(`exited with status ${status}`);
      const secret = withoutTrailingLineBreaks(output.toString('utf8'));
      output.fill(0);
      if (secret.trim().length === 0) return fail('printed nothing');
      try {
        assertNoSurroundingWhitespace(keyId, secret, 'the secret command\'s output');
      } catch (err) {
        return reject(err as Error);
      }
      resolve(secret);
    });
  });
}
