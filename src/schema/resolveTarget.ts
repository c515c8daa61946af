import type { FormatId } from '../config/configSchema.js';
import type { TargetConfig } from '../config/loadConfig.js';
import {
  assertColumn,
  assertRelationExists,
  assertWholeTableVisible,
  selectRegistryReferencingColumnsSql,
  type ColumnInfo,
  type TableInfo,
} from '../db/catalog.js';
import { assertColumnPrivilege } from '../db/privileges.js';
import { formatIdent, formatQualifiedName } from '../db/quote.js';
import type { Queryable } from '../db/withTransaction.js';
import { TargetError } from '../errors.js';
import { keyVersionColumn } from './keyUsage.js';
import { assertKeyVersionGuards } from './keyVersionGuards.js';

/** A key column with the type its text form is cast back to in keyset comparisons. */
export interface KeyColumn {
  name: string;
  /** format_type() of the column, used as `$n::<type>`; comes from pg_catalog, not config. */
  type: string;
  /**
   * The column's collation when it is not its type's, quoted for a COLLATE
   * clause; from pg_catalog. Needed where two parameters are compared with no
   * column in the expression to lend them its collation (verifySql compareKeysSql).
   */
  collation?: string;
}

/** An encrypted column and its key-version column. */
export interface EncryptedColumn {
  name: string;
  versionColumn: string;
  /** Whether the key-version column exists yet (the target migration has run). */
  hasVersionColumn: boolean;
  /** The column's length limit in characters (varchar(n), char(n)), or null: a new value longer cannot be written. */
  maxLength: number | null;
}

/** A target checked against pg_catalog: everything the rotator and verify need. */
export interface ResolvedTarget {
  /** "schema.table", for messages, ranges and failures rows. */
  name: string;
  schema: string;
  table: string;
  key: KeyColumn[];
  columns: EncryptedColumn[];
  format: FormatId;
}

const TEXT_TYPES = new Set(['text', 'varchar', 'bpchar', 'citext']);

/** Picks the keyset key: the configured columns if given (they must form a usable unique key), else the primary key. */
function chooseKey(table: TableInfo, requested: readonly string[] | undefined): ColumnInfo[] {
  const where = formatQualifiedName(table);
  if (requested) {
    const columns = requested.map((name) => assertColumn(table, name));
    const nullable = columns.filter((c) => !c.notNull);
    if (nullable.length > 0) {
      throw new TargetError(`key column ${nullable[0]!.name} of ${where} is nullable — a keyset key must be NOT NULL`);
    }
    const unique = table.uniqueKeys.some(
      (k) => k.columns.length === requested.length && k.columns.every((c) => requested.includes(c)),
    );
    if (!unique) {
      throw new TargetError(
        `(${requested.join(', ')}) is not a unique key of ${where} — create a unique index on NOT NULL columns or name the primary key`,
      );
    }
    return columns;
  }
  const key = table.uniqueKeys.find((k) => k.primary) ?? table.uniqueKeys[0];
  if (!key) {
    throw new TargetError(
      `${where} has no primary key or unique index on NOT NULL columns — pg-rekey pages through rows by such a key; add one or pass --key`,
    );
  }
  return key.columns.map((name) => assertColumn(table, name));
}

/**
 * Refuses a `<column>_key_version` that exists but is not a key-version column
 * (neither a foreign key to the registry nor pg-rekey's reset trigger): the
 * application's own column of that name.
 * The target migration's ADD COLUMN IF NOT EXISTS would adopt it, the rotator
 * would overwrite its values, and "migrate down" would drop it with its data.
 */
async function assertVersionColumnsOurs(db: Queryable, table: TableInfo, columns: readonly EncryptedColumn[], registrySchema: string): Promise<void> {
  if (!columns.some((c) => c.hasVersionColumn)) return;
  const ours = new Set((await db.query<{ name: string }>(selectRegistryReferencingColumnsSql(table.oid, registrySchema))).rows.map((r) => r.name));
  const foreign = columns.find((c) => c.hasVersionColumn && !ours.has(c.versionColumn));
  if (foreign) {
    throw new TargetError(
      `${formatQualifiedName(table)} already has a column ${formatIdent(foreign.versionColumn)} that is not a pg-rekey key-version column ` +
        `(neither a foreign key to ${formatIdent(registrySchema)}.keys nor pg-rekey's trigger): pg-rekey would overwrite it, and "migrate down" would drop it — ` +
        `rename that column, then run the command again`,
    );
  }
}

/**
 * Resolves a configured target against pg_catalog: the table exists, the key
 * is a unique NOT NULL key, the encrypted columns are text, their key-version
 * columns, where they exist, are pg-rekey's, and a read of it
 * sees exactly its rows (assertWholeTableVisible). `requireVersionColumns`
 * additionally demands the target migration has been applied and its guard
 * triggers are in place (assertKeyVersionGuards).
 */
export async function resolveTarget(
  db: Queryable,
  target: TargetConfig,
  options: { requireVersionColumns: boolean; registrySchema: string },
): Promise<ResolvedTarget> {
  const table = await assertRelationExists(db, { schema: target.schema, name: target.table });
  const where = formatQualifiedName(table);
  const key = chooseKey(table, target.key).map((c): KeyColumn => ({ name: c.name, type: c.type, ...(c.collation ? { collation: c.collation } : {}) }));
  const columns = target.columns.map((name) => {
    const column = assertColumn(table, name);
    if (!TEXT_TYPES.has(column.typeName)) {
      throw new TargetError(`column ${name} of ${where} is ${column.type}, not text or varchar — pg-rekey rotates text values`);
    }
    if (column.generated) throw new TargetError(`column ${name} of ${where} is generated and cannot be written`);
    if (key.some((k) => k.name === name)) throw new TargetError(`column ${name} of ${where} is part of the key`);
    const versionColumn = keyVersionColumn(name);
    const hasVersionColumn = table.columns.some((c) => c.name === versionColumn);
    if (options.requireVersionColumns && !hasVersionColumn) {
      throw new TargetError(
        `${where}.${name} has no ${versionColumn} column — run "pg-rekey target add --table ${where} --columns ${target.columns.join(',')}" and "pg-rekey migrate up"`,
      );
    }
    return { name, versionColumn, hasVersionColumn, maxLength: column.maxLength };
  });
  await assertVersionColumnsOurs(db, table, columns, options.registrySchema);
  await assertWholeTableVisible(db, table);
  if (options.requireVersionColumns) await assertKeyVersionGuards(db, table, target.columns);
  return { name: where, schema: target.schema, table: target.table, key, columns, format: target.format };
}

/** resolveTarget for each of `targets`, in order, demanding their version columns (rotate, verify, keys retire). */
export async function resolveTargets(db: Queryable, targets: readonly TargetConfig[], registrySchema: string): Promise<ResolvedTarget[]> {
  const resolved: ResolvedTarget[] = [];
  for (const t of targets) resolved.push(await resolveTarget(db, t, { requireVersionColumns: true, registrySchema }));
  return resolved;
}

/** What a command writes to its targets, beyond reading them: nothing, the values and their key versions (rotate), or key versions only (verify --fix-versions). */
export type TargetWrites = 'none' | 'values' | 'key-versions';

/**
 * Throws DatabaseError (exit 69) unless pg-rekey's role may read every column
 * of `targets` it reads and update those it `writes`: checked up front, so a
 * missing grant stops the command before its first write (see db/privileges.ts).
 */
export async function assertTargetPrivileges(db: Queryable, targets: readonly ResolvedTarget[], writes: TargetWrites): Promise<void> {
  for (const t of targets) {
    const table = { schema: t.schema, name: t.table };
    const values = t.columns.map((c) => c.name);
    const versions = t.columns.map((c) => c.versionColumn);
    await assertColumnPrivilege(db, table, [...t.key.map((k) => k.name), ...values, ...versions], 'SELECT', 'reads');
    if (writes === 'values') await assertColumnPrivilege(db, table, [...values, ...versions], 'UPDATE', 'rewrites when it rotates');
    if (writes === 'key-versions') await assertColumnPrivilege(db, table, versions, 'UPDATE', 'sets with --fix-versions');
  }
}
