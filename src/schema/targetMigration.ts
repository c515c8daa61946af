import { createHash } from 'node:crypto';
import type { PartitionInfo } from '../db/catalog.js';
import { NOT_KEY_VERSION_WRITER } from '../db/keyVersionWriter.js';
import { qualifiedName, quoteIdent, type QualifiedName } from '../db/quote.js';
import { TargetError } from '../errors.js';
import { keyVersionColumn } from './keyUsage.js';

/** What a target migration covers: one table and the encrypted columns it adds key versions to. */
export interface TargetMigrationSpec {
  /** The table's schema and name, exactly as in pg_catalog. */
  schema: string;
  table: string;
  columns: readonly string[];
  /** pg-rekey's schema (config.schema), where the registry and reset_key_version() live. */
  registrySchema: string;
  /** How long a DDL statement may wait for its lock before failing (default 5s). */
  lockTimeout?: string;
  /** For a partitioned table: its partitions at every level, parents first (catalog findPartitions). */
  partitions?: readonly PartitionInfo[];
}

/** A rendered node-pg-migrate migration file. */
export interface RenderedMigration {
  fileName: string;
  source: string;
  /** The statements of up and down, for review output. */
  up: string[];
  down: string[];
}

/** Marker line that lets `target add` recognise which columns an existing migration covers. */
export const TARGET_MARKER = '// pg-rekey target: ';

/**
 * An identifier of at most 63 bytes built from `base` and `suffix`: PostgreSQL
 * truncates longer names silently, and two long columns could then collide, so
 * a long base is cut and given a short hash of the full name instead.
 */
export function boundedName(base: string, suffix: string): string {
  const full = `${base}_${suffix}`;
  if (Buffer.byteLength(full, 'utf8') <= 63) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 8);
  let cut = base;
  while (Buffer.byteLength(`${cut}_${hash}_${suffix}`, 'utf8') > 63) cut = cut.slice(0, -1);
  return `${cut}_${hash}_${suffix}`;
}

function pairHash(table: string, column: string): string {
  return createHash('sha256').update(JSON.stringify([table, column])).digest('hex').slice(0, 6);
}

/** The names a target migration gives the objects it creates for `column` of `table`. */
export function keyVersionObjectNames(table: string, column: string) {
  return {
    versionColumn: keyVersionColumn(column),
    foreignKey: boundedName(`${table}_${column}`, 'kv_fkey'),
    // Index names share the schema's namespace, and "_" joins names that may
    // contain it ("account_holder" + "email", "account" + "holder_email"): a
    // short hash of the exact pair keeps two targets' indexes apart.
    index: boundedName(`${table}_${column}_${pairHash(table, column)}`, 'kv_idx'),
    // BEFORE triggers fire in name order; "zz_" makes ours fire last, so it sees
    // the final NEW after any application trigger that rewrites the column.
    trigger: boundedName(`zz_pgrekey_${column}`, 'kv_reset'),
    insertTrigger: boundedName(`zz_pgrekey_${column}`, 'kv_reset_ins'),
  };
}

/**
 * A string literal that reads the same whatever the applying session's
 * standard_conforming_strings: with it off, a backslash in '…' is an escape,
 * so a name containing one would reach the server altered (the reset trigger
 * would name a column that does not exist and silently do nothing). Such text
 * gets an E'…' literal, in which backslashes are always escapes, doubled.
 */
function quoteLiteral(text: string): string {
  const quoted = text.replaceAll("'", "''");
  return text.includes('\\') ? `E'${quoted.replaceAll('\\', '\\\\')}'` : `'${quoted}'`;
}

/** The SQL of the up and down migration, statement by statement (see renderTargetMigration for the order). */
export function targetMigrationSql(spec: TargetMigrationSpec): { up: string[]; down: string[] } {
  const table = qualifiedName({ schema: spec.schema, name: spec.table });
  const registry = quoteIdent(spec.registrySchema);
  const cols = spec.columns.map((c) => ({ c, q: quoteIdent(c), ...keyVersionObjectNames(spec.table, c) }));
  const timeout = spec.lockTimeout ?? '5s';
  const partitionNames = (spec.partitions ?? []).flatMap((p) => [p.schema, p.name]);
  if ([spec.schema, spec.table, spec.registrySchema, ...spec.columns, ...partitionNames].some((n) => n.includes('$pgrekey$'))) {
    // Would end the DO block's dollar quote early; no sane name contains it.
    throw new TargetError('an identifier contains "$pgrekey$", which target migrations cannot quote');
  }
  const up: string[] = [];
  const down: string[] = [];

  // A failing DDL statement waits at most this long instead of queueing every
  // application query on the table behind its ACCESS EXCLUSIVE lock request.
  up.push(`SET lock_timeout = ${quoteLiteral(timeout)}`);
  if (spec.partitions) {
    // Written on PostgreSQL 18 but applied to an older server: say why before changing anything.
    up.push(
      `DO $pgrekey$ BEGIN\n` +
        `  IF current_setting('server_version_num')::int < 180000 THEN\n` +
        `    RAISE EXCEPTION '% is partitioned: adding its key-version foreign keys NOT VALID needs PostgreSQL 18 or later', ${quoteLiteral(table)};\n` +
        `  END IF;\nEND $pgrekey$`,
    );
  }
  // One statement string = one implicit transaction: the columns, foreign keys
  // (NOT VALID: no scan under the lock) and triggers appear together or not at all.
  // Each part is idempotent, so re-running after a later step failed is safe.
  up.push(
    [
      `ALTER TABLE ${table}`,
      cols.map((x) => `  ADD COLUMN IF NOT EXISTS ${quoteIdent(x.versionColumn)} smallint`).join(',\n') + ',',
      cols
        .map(
          (x) =>
            `  DROP CONSTRAINT IF EXISTS ${quoteIdent(x.foreignKey)},\n` +
            `  ADD CONSTRAINT ${quoteIdent(x.foreignKey)} FOREIGN KEY (${quoteIdent(x.versionColumn)})` +
            ` REFERENCES ${registry}.keys (version) NOT VALID`,
        )
        .join(',\n') + ';',
      // The guard of the hints (keyVersionWriter.ts): a write that changes the
      // value or its key version, or inserts a row with a key version, leaves
      // the hint NULL unless it is pg-rekey's own. The cheap tests come first.
      ...cols.flatMap((x) => {
        const v = quoteIdent(x.versionColumn);
        const reset = `EXECUTE FUNCTION ${registry}.reset_key_version(${quoteLiteral(x.versionColumn)});`;
        return [
          `CREATE OR REPLACE TRIGGER ${quoteIdent(x.trigger)} BEFORE UPDATE ON ${table} FOR EACH ROW\n` +
            `  WHEN (NEW.${v} IS NOT NULL AND (NEW.${x.q} IS DISTINCT FROM OLD.${x.q} OR NEW.${v} IS DISTINCT FROM OLD.${v})\n` +
            `        AND ${NOT_KEY_VERSION_WRITER})\n  ${reset}`,
          `CREATE OR REPLACE TRIGGER ${quoteIdent(x.insertTrigger)} BEFORE INSERT ON ${table} FOR EACH ROW\n` +
            `  WHEN (NEW.${v} IS NOT NULL AND ${NOT_KEY_VERSION_WRITER})\n  ${reset}`,
        ];
      }),
    ].join('\n'),
  );
  // Validation scans the table but takes only SHARE UPDATE EXCLUSIVE: writes go on.
  for (const x of cols) up.push(`ALTER TABLE ${table} VALIDATE CONSTRAINT ${quoteIdent(x.foreignKey)}`);
  // Serves "rows still to do" (version IS NULL or not the target key) and the retire check.
  for (const x of cols) {
    up.push(...(spec.partitions ? partitionedIndexSql(spec, spec.partitions, x) : concurrentIndexSql({ schema: spec.schema, name: spec.table }, x)));
  }
  up.push('RESET lock_timeout');

  down.push(`SET lock_timeout = ${quoteLiteral(timeout)}`);
  for (const x of cols) {
    const index = qualifiedName({ schema: spec.schema, name: x.index });
    // A partitioned index cannot be dropped CONCURRENTLY; dropping it drops its partitions' indexes.
    down.push(spec.partitions ? `DROP INDEX IF EXISTS ${index}` : `DROP INDEX CONCURRENTLY IF EXISTS ${index}`);
  }
  down.push(
    [
      ...cols.flatMap((x) => [`DROP TRIGGER IF EXISTS ${quoteIdent(x.trigger)} ON ${table};`, `DROP TRIGGER IF EXISTS ${quoteIdent(x.insertTrigger)} ON ${table};`]),
      `ALTER TABLE ${table}`,
      // Dropping the column drops its foreign key with it.
      cols.map((x) => `  DROP COLUMN IF EXISTS ${quoteIdent(x.versionColumn)}`).join(',\n') + ';',
    ].join('\n'),
  );
  down.push('RESET lock_timeout');
  return { up, down };
}

/** The names of one column's key-version objects, as targetMigrationSql uses them. */
type ColumnObjects = ReturnType<typeof keyVersionObjectNames> & { c: string };

/**
 * `CREATE INDEX CONCURRENTLY` of `table`'s index on `x`'s key-version column.
 * A build that failed leaves an INVALID index behind, which IF NOT EXISTS
 * would then keep forever: such a leftover is dropped first.
 */
function concurrentIndexSql(table: QualifiedName, x: ColumnObjects, index = x.index): string[] {
  const qualifiedIndex = qualifiedName({ schema: table.schema, name: index });
  return [
    `DO $pgrekey$ BEGIN\n` +
      `  IF EXISTS (SELECT 1 FROM pg_catalog.pg_index WHERE indexrelid = to_regclass(${quoteLiteral(qualifiedIndex)}) AND NOT indisvalid) THEN\n` +
      `    DROP INDEX ${qualifiedIndex};\n` +
      `  END IF;\nEND $pgrekey$`,
    `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(index)} ON ${qualifiedName(table)} (${quoteIdent(x.versionColumn)})`,
  ];
}

/**
 * A partitioned table's index cannot be built CONCURRENTLY. The lock-safe way:
 * an index ON ONLY each partitioned level (no build, invalid until complete),
 * each leaf's index built CONCURRENTLY, every child index attached to its
 * parent's; the root index turns valid when the last one is attached, and
 * partitions created later get theirs automatically. A partition added
 * between `target add` and `migrate up` would leave the root index invalid,
 * so the last step checks it and says what to do.
 */
function partitionedIndexSql(spec: TargetMigrationSpec, partitions: readonly PartitionInfo[], x: ColumnObjects): string[] {
  const rootTable = { schema: spec.schema, name: spec.table };
  const indexOf = (table: QualifiedName) =>
    table.schema === spec.schema && table.name === spec.table ? x.index : keyVersionObjectNames(table.name, x.c).index;
  const qualifiedIndexOf = (table: QualifiedName) => qualifiedName({ schema: table.schema, name: indexOf(table) });
  const root = qualifiedIndexOf(rootTable);
  const steps = [`CREATE INDEX IF NOT EXISTS ${quoteIdent(x.index)} ON ONLY ${qualifiedName(rootTable)} (${quoteIdent(x.versionColumn)})`];
  for (const part of partitions) {
    if (part.leaf) steps.push(...concurrentIndexSql(part, x, indexOf(part)));
    else steps.push(`CREATE INDEX IF NOT EXISTS ${quoteIdent(indexOf(part))} ON ONLY ${qualifiedName(part)} (${quoteIdent(x.versionColumn)})`);
    // Attaching an index already attached to this parent does nothing, so a re-run is safe.
    steps.push(`ALTER INDEX ${qualifiedIndexOf(part.parent)} ATTACH PARTITION ${qualifiedIndexOf(part)}`);
  }
  steps.push(
    `DO $pgrekey$ BEGIN\n` +
      `  IF NOT (SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = to_regclass(${quoteLiteral(root)})) THEN\n` +
      `    RAISE EXCEPTION 'index % is incomplete: a partition of % was created after this migration was written', ${quoteLiteral(root)}, ${quoteLiteral(qualifiedName(rootTable))}\n` +
      `      USING HINT = 'delete this migration file, run "pg-rekey target add" again for the table, then "pg-rekey migrate up"';\n` +
      `  END IF;\nEND $pgrekey$`,
  );
  return steps;
}

/** A file-name-safe form of an identifier. */
function slug(name: string): string {
  return name.replace(/[^A-Za-z0-9_]+/g, '_').slice(0, 40);
}

/**
 * Renders the node-pg-migrate migration (`.mjs`) that adds key-version columns
 * for `spec` (DESIGN §3 "Migrations are lock-safe"). It runs outside a
 * transaction (`pgm.noTransaction()`) because CREATE INDEX CONCURRENTLY cannot
 * run inside one; the statements are ordered and idempotent so that a failure
 * at any step (a lock timeout, a cancelled index build) is fixed by running
 * `pg-rekey migrate up` again.
 */
export function renderTargetMigration(spec: TargetMigrationSpec, now: Date = new Date()): RenderedMigration {
  const { up, down } = targetMigrationSql(spec);
  const fileName = `${now.getTime()}_pg-rekey-target-${slug(spec.schema)}-${slug(spec.table)}.mjs`;
  const body = (stmts: string[]) =>
    stmts
      .map((s) => `  pgm.sql(${s.split('\n').map((line) => JSON.stringify(line)).join(' + "\\n" +\n    ')});`)
      .join('\n');
  const marker = JSON.stringify({ schema: spec.schema, table: spec.table, columns: spec.columns });
  const source = `${TARGET_MARKER}${marker}
// Generated by "pg-rekey target add". Adds, for each column c: c_key_version
// (smallint, nullable) referencing ${spec.registrySchema}.keys (foreign key added NOT VALID,
// then validated), a trigger that resets c_key_version to NULL when an application
// changes c without it, and an index built CONCURRENTLY${spec.partitions ? ' (on each partition, attached to one on\n// the partitioned table)' : ''}. Review it, commit it, and
// apply it with "pg-rekey migrate up"; re-running after a failure is safe.

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const up = (pgm) => {
  // CREATE INDEX CONCURRENTLY cannot run inside a transaction.
  pgm.noTransaction();
${body(up)}
};

/** @param {import('node-pg-migrate').MigrationBuilder} pgm */
export const down = (pgm) => {
  // DROP INDEX CONCURRENTLY cannot run inside a transaction.
  pgm.noTransaction();
${body(down)}
};
`;
  return { fileName, source, up, down };
}

/** Parses the marker line of a migration written by renderTargetMigration; null for any other file. */
export function parseTargetMarker(source: string): { schema: string; table: string; columns: string[] } | null {
  const first = source.split('\n', 1)[0] ?? '';
  if (!first.startsWith(TARGET_MARKER)) return null;
  try {
    const parsed = JSON.parse(first.slice(TARGET_MARKER.length)) as { schema: string; table: string; columns: string[] };
    return typeof parsed.table === 'string' && Array.isArray(parsed.columns) ? parsed : null;
  } catch {
    return null;
  }
}
