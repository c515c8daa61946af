import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { formatQualifiedName, parseQualifiedName } from '../db/quote.js';
import { ConfigError } from '../errors.js';
import { configFileSchema, type ConfigFile, type FormatId } from './configSchema.js';
import { describeJsonSyntaxError } from './findJsonSyntaxError.js';

/** A configured key: its id and where its secret comes from (never the secret). */
export interface KeyRef {
  readonly id: string;
  readonly secret: string;
}

/** A target table with its resolved schema-qualified name. */
export interface TargetConfig {
  readonly schema: string;
  readonly table: string;
  /** Key columns, or undefined to use the table's primary key. */
  readonly key: readonly string[] | undefined;
  readonly columns: readonly string[];
  readonly format: FormatId;
}

/** The validated, frozen configuration every command works from. */
export interface ResolvedConfig {
  /** Absolute path of the config file it came from. */
  readonly configPath: string;
  /** Directory that relative paths (file: secrets, migrationsDir) resolve against. */
  readonly baseDir: string;
  readonly keys: readonly KeyRef[];
  readonly targets: readonly TargetConfig[];
  readonly schema: string;
  readonly migrationsDir: string;
  readonly rotationIntervalDays: number;
}

/**
 * Splits "schema.table" (default schema public) with the server's rules for
 * quoting and case folding (src/db/quote.ts); a bad name is a config error.
 */
export function splitTableName(name: string): { schema: string; table: string } {
  try {
    const { schema, name: table } = parseQualifiedName(name);
    return { schema, table };
  } catch (err) {
    throw new ConfigError(`table "${name}" is not a valid name: expected "table" or "schema.table" (${(err as Error).message})`);
  }
}

/** Formats zod issues as "path: what was expected" lines, one per problem. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path
        .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
        .join('');
      return `  ${where || '(top level)'}: ${issue.message}`;
    })
    .join('\n');
}

/**
 * Refuses two targets that name the same table, however spelt ("people",
 * "public.people", "PEOPLE"): a run, its ranges and its failures know a target
 * by its table, so the second would collide with the first halfway through
 * planning a rotation. One target lists all of a table's columns.
 */
function assertEachTableOnce(targets: readonly { schema: string; table: string }[], configPath: string): void {
  const first = new Map<string, number>();
  targets.forEach((t, index) => {
    const key = JSON.stringify([t.schema, t.table]);
    const earlier = first.get(key);
    if (earlier !== undefined) {
      throw new ConfigError(
        `config file ${configPath} is invalid:\n  targets[${index}].table: names ${formatQualifiedName({ schema: t.schema, name: t.table })}, ` +
          `as targets[${earlier}] does — list all its columns in one target`,
      );
    }
    first.set(key, index);
  });
}

/** Validates an already-parsed config object; `configPath` locates relative paths. */
export function resolveConfig(raw: unknown, configPath: string): ResolvedConfig {
  const parsed = configFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(`config file ${configPath} is invalid:\n${describeIssues(parsed.error)}`);
  }
  const file: ConfigFile = parsed.data;
  const baseDir = path.dirname(path.resolve(configPath));
  const targets = file.targets.map((t) => {
    const { schema, table } = splitTableName(t.table);
    return Object.freeze({
      schema,
      table,
      key: t.key ? Object.freeze([...t.key]) : undefined,
      columns: Object.freeze([...t.columns]),
      format: t.format,
    });
  });
  assertEachTableOnce(targets, configPath);
  return Object.freeze({
    configPath: path.resolve(configPath),
    baseDir,
    keys: Object.freeze(file.keys.map((k) => Object.freeze({ ...k }))),
    targets: Object.freeze(targets),
    schema: file.schema,
    migrationsDir: path.resolve(baseDir, file.migrationsDir),
    rotationIntervalDays: file.rotationIntervalDays,
  });
}

/** Reads, parses and validates the config file at `configPath`. */
export async function loadConfig(configPath: string): Promise<ResolvedConfig> {
  let text: string;
  try {
    text = await readFile(configPath, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new ConfigError(
        `config file ${configPath} not found — create it (see README "Config") or pass --config <path>`,
      );
    }
    throw new ConfigError(`config file ${configPath} cannot be read (${code ?? 'unknown error'})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // Never JSON.parse's message: it quotes the text near the error, which may be a secret.
    throw new ConfigError(`config file ${configPath} is not valid JSON: ${describeJsonSyntaxError(text)}`);
  }
  return resolveConfig(raw, configPath);
}

/** The "schema.table" display name of a target. */
export function targetName(target: Pick<TargetConfig, 'schema' | 'table'>): string {
  return `${target.schema}.${target.table}`;
}
