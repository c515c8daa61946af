import { readFile, writeFile } from 'node:fs/promises';
import { splitTableName } from '../config/loadConfig.js';
import type { FormatId } from '../config/configSchema.js';
import { describeJsonSyntaxError } from '../config/findJsonSyntaxError.js';
import { ConfigError, UsageError } from '../errors.js';

/** A target as written into the config file. */
export interface TargetEntry {
  table: string;
  key?: string[];
  columns: string[];
  format: FormatId;
}

/** What adding a target does to the config file. */
export interface ConfigChange {
  /** 'added': a new target; 'extended': new columns for a configured table; 'unchanged': already there. */
  action: 'added' | 'extended' | 'unchanged';
  /** The target entry as it ends up in the file. */
  entry: TargetEntry;
  /** Columns that were not configured before. */
  newColumns: string[];
  /** The whole file after the change (equal to before when unchanged). */
  text: string;
}

/** The config spelling of a table: plain when the server keeps it verbatim, else double-quoted. */
export function configTableName(schema: string, table: string): string {
  const part = (p: string) => (/^[a-z_][a-z0-9_$]*$/.test(p) && !p.includes('.') ? p : `"${p.replaceAll('"', '""')}"`);
  return `${part(schema)}.${part(table)}`;
}

function sameTable(a: string, schema: string, table: string): boolean {
  try {
    const t = splitTableName(a);
    return t.schema === schema && t.table === table;
  } catch {
    return false;
  }
}

/**
 * Computes the config file with `wanted` added (or its new columns merged into
 * the existing entry for the table). Other fields and entries are kept as they
 * are; the file is re-serialised as 2-space JSON. Does not write.
 */
export function planConfigChange(
  text: string,
  configPath: string,
  wanted: { schema: string; table: string; key?: string[] | undefined; columns: string[]; format: FormatId },
): ConfigChange {
  let raw: { targets?: TargetEntry[] } & Record<string, unknown>;
  try {
    raw = JSON.parse(text) as typeof raw;
  } catch {
    // Never JSON.parse's message: it quotes the text near the error, which may be a secret.
    throw new ConfigError(`config file ${configPath} is not valid JSON: ${describeJsonSyntaxError(text)}`);
  }
  const targets = Array.isArray(raw.targets) ? raw.targets : [];
  const existing = targets.find((t) => sameTable(t.table, wanted.schema, wanted.table));
  if (existing) {
    if (existing.format !== wanted.format) {
      throw new UsageError(
        `${existing.table} is already configured with format ${existing.format}, not ${wanted.format} — one table has one format`,
      );
    }
    const newColumns = wanted.columns.filter((c) => !existing.columns.includes(c));
    if (newColumns.length === 0) return { action: 'unchanged', entry: existing, newColumns, text };
    existing.columns = [...existing.columns, ...newColumns];
    return { action: 'extended', entry: existing, newColumns, text: `${JSON.stringify(raw, null, 2)}\n` };
  }
  const entry: TargetEntry = {
    table: configTableName(wanted.schema, wanted.table),
    ...(wanted.key ? { key: wanted.key } : {}),
    columns: wanted.columns,
    format: wanted.format,
  };
  raw.targets = [...targets, entry];
  return { action: 'added', entry, newColumns: wanted.columns, text: `${JSON.stringify(raw, null, 2)}\n` };
}

/** Reads the config file, plans the change and (unless dryRun or unchanged) writes it back. */
export async function addTargetToConfig(
  configPath: string,
  wanted: Parameters<typeof planConfigChange>[2],
  options: { dryRun: boolean },
): Promise<ConfigChange> {
  const text = await readFile(configPath, 'utf8');
  const change = planConfigChange(text, configPath, wanted);
  if (!options.dryRun && change.action !== 'unchanged') await writeFile(configPath, change.text);
  return change;
}
