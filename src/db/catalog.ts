/**
 * Checks of configured identifiers against pg_catalog. Every table and column
 * named in config is looked up here before any statement uses it, so a typo
 * fails with a clear TargetError instead of a 42P01 halfway through a run, and
 * the rotator learns which unique NOT NULL keys it may page on (DESIGN §3).
 */

import { TargetError } from '../errors.js';
import { formatIdent, formatQualifiedName, qualifiedName, type QualifiedName } from './quote.js';
import { sql, type Sql } from './sql.js';
import type { Queryable } from './withTransaction.js';

/** A column of a table, from pg_attribute. */
export interface ColumnInfo {
  readonly name: string;
  readonly attnum: number;
  /** format_type() output, e.g. 'character varying(255)', 'uuid', 'text'. */
  readonly type: string;
  /** The base type's name (pg_type.typname), e.g. 'varchar', 'uuid', 'text'. */
  readonly typeName: string;
  readonly notNull: boolean;
  /** A GENERATED … STORED column cannot be written. */
  readonly generated: boolean;
  /** The n of varchar(n) / char(n), in characters; null for an unbounded type. */
  readonly maxLength: number | null;
  /** The column's collation, quoted for a COLLATE clause, when it is not its type's (null otherwise). */
  readonly collation: string | null;
}

/** A unique index usable as a keyset: valid, not partial, no expressions, all columns NOT NULL. */
export interface UniqueKeyInfo {
  readonly indexName: string;
  /** Key columns in index order (INCLUDE columns excluded). */
  readonly columns: readonly string[];
  readonly primary: boolean;
}

/** What pg-rekey needs to know about a target table. */
export interface TableInfo extends QualifiedName {
  readonly oid: number;
  readonly kind: 'table' | 'partitioned table';
  readonly columns: readonly ColumnInfo[];
  /** Primary key first, then other qualifying unique indexes by name. */
  readonly uniqueKeys: readonly UniqueKeyInfo[];
}

/** The relation `schema.name` of any kind, by exact (case-sensitive) name. */
export function selectRelationSql(qualified: QualifiedName): Sql {
  return sql(
    `SELECT c.oid, c.relkind
       FROM pg_catalog.pg_class c
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2`,
    [qualified.schema, qualified.name],
  );
}

/** Whether a schema exists, to tell "no such schema" from "no such table". */
export function selectSchemaExistsSql(schema: string): Sql {
  return sql(`SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1) AS exists`, [schema]);
}

/** Live columns of a relation in attnum order. */
export function selectColumnsSql(oid: number): Sql {
  return sql(
    `SELECT a.attname AS name, a.attnum, pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
            t.typname AS type_name, a.attnotnull AS not_null, a.attgenerated <> '' AS generated,
            CASE WHEN t.typname IN ('varchar', 'bpchar') AND a.atttypmod > 0 THEN a.atttypmod - 4 END AS max_length,
            CASE WHEN a.attcollation <> t.typcollation THEN pg_catalog.format('%I.%I', cn.nspname, co.collname) END AS collation
       FROM pg_catalog.pg_attribute a
       JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
       LEFT JOIN pg_catalog.pg_namespace cn ON cn.oid = co.collnamespace
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum`,
    [oid],
  );
}

/**
 * Unique indexes whose key columns are all NOT NULL. Partial and expression
 * indexes are excluded (a keyset over them would skip rows), as are invalid
 * ones (a failed CREATE INDEX CONCURRENTLY leaves an index that enforces
 * nothing), and those whose collation differs from a column's nondeterministic
 * one: the keyset compares by the column's collation, under which the index
 * lets two rows ('h1', 'H1' for a case-insensitive one) share a key, so a read
 * would skip one and the write by key would give it the other's value.
 * Columns come in index order, which is the keyset's order.
 */
export function selectUniqueKeysSql(oid: number): Sql {
  return sql(
    `SELECT ic.relname AS index_name, i.indisprimary AS primary,
            ARRAY(SELECT a.attname::text
                    FROM generate_series(0, i.indnkeyatts - 1) AS k(pos)
                    JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.pos]
                   ORDER BY k.pos) AS columns
       FROM pg_catalog.pg_index i
       JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
      WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid
        AND i.indpred IS NULL AND i.indexprs IS NULL
        AND NOT EXISTS (
              SELECT 1
                FROM generate_series(0, i.indnkeyatts - 1) AS k(pos)
                LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[k.pos]
                LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation
               WHERE a.attnum IS NULL OR NOT a.attnotnull
                  OR (i.indcollation[k.pos] <> a.attcollation AND NOT co.collisdeterministic))
      ORDER BY i.indisprimary DESC, ic.relname`,
    [oid],
  );
}

/**
 * Looks up a table (ordinary or partitioned) with its columns and usable
 * unique keys; null when no relation of that name exists. Throws TargetError
 * when the name belongs to something else (a view, a sequence…), since
 * rotating through a view would bypass its base table's keys.
 */
export async function findTable(client: Queryable, schema: string, table: string): Promise<TableInfo | null> {
  const qualified = { schema, name: table };
  const rel = await client.query<{ oid: number; relkind: string }>(selectRelationSql(qualified));
  const row = rel.rows[0];
  if (row === undefined) return null;
  if (row.relkind !== 'r' && row.relkind !== 'p') {
    throw new TargetError(`${formatQualifiedName(qualified)} is not a table (relkind ${row.relkind}); name the base table`);
  }
  const oid = Number(row.oid);
  // Sequential on purpose: a single client runs one query at a time anyway.
  const cols = await client.query<{
    name: string;
    attnum: number;
    type: string;
    type_name: string;
    not_null: boolean;
    generated: boolean;
    max_length: number | null;
    collation: string | null;
  }>(selectColumnsSql(oid));
  const keys = await client.query<{ index_name: string; primary: boolean; columns: string[] }>(selectUniqueKeysSql(oid));
  return {
    schema,
    name: table,
    oid,
    kind: row.relkind === 'p' ? 'partitioned table' : 'table',
    columns: cols.rows.map((c) => ({
      name: c.name,
      attnum: c.attnum,
      type: c.type,
      typeName: c.type_name,
      notNull: c.not_null,
      generated: c.generated,
      maxLength: c.max_length,
      collation: c.collation,
    })),
    uniqueKeys: keys.rows.map((k) => ({ indexName: k.index_name, columns: k.columns, primary: k.primary })),
  };
}

/**
 * findTable, but throws TargetError when the table is missing, saying whether
 * the schema itself is missing, so the message points at the right typo.
 */
export async function assertRelationExists(client: Queryable, qualified: QualifiedName): Promise<TableInfo> {
  const table = await findTable(client, qualified.schema, qualified.name);
  if (table !== null) return table;
  const schema = await client.query<{ exists: boolean }>(selectSchemaExistsSql(qualified.schema));
  if (schema.rows[0]?.exists !== true) {
    throw new TargetError(`schema ${formatIdent(qualified.schema)} does not exist (target ${formatQualifiedName(qualified)})`);
  }
  throw new TargetError(`table ${formatQualifiedName(qualified)} does not exist — check the target's table name`);
}

/** The named column of `table`, or a TargetError naming the table and column. */
export function assertColumn(table: TableInfo, column: string): ColumnInfo {
  const found = table.columns.find((c) => c.name === column);
  if (found === undefined) {
    throw new TargetError(`column ${JSON.stringify(column)} does not exist in table ${formatQualifiedName(table)}`);
  }
  return found;
}

/** Whether row-level security filters what the current role reads of the relation, by the server's own rules. */
export function selectRowSecurityActiveSql(oid: number): Sql {
  return sql('SELECT pg_catalog.row_security_active($1::oid::regclass) AS active, current_user AS role', [oid]);
}

/** One (non-partition) inheritance child of a relation, if it has any. */
export function selectInheritanceChildSql(oid: number): Sql {
  return sql(
    `SELECT c.oid::regclass::text AS child
       FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = $1 AND NOT c.relispartition
      ORDER BY 1 LIMIT 1`,
    [oid],
  );
}

/**
 * Refuses a table of which a read would not cover exactly its rows: one whose
 * row-level security filters this role (rotate and verify would see only the
 * rows the policies show, and the old key could be retired while the others
 * still need it; row_security_active() weighs owner, FORCE, BYPASSRLS and
 * superuser, so no rule is copied here), or one with classic inheritance
 * children (a read includes their rows but its unique key does not span them:
 * the keyset could meet a key twice, and an UPDATE by key could write a
 * parent's value into a child's row). Partitions are fine: their key spans the tree.
 */
export async function assertWholeTableVisible(client: Queryable, table: TableInfo): Promise<void> {
  const where = formatQualifiedName(table);
  const security = (await client.query<{ active: boolean; role: string }>(selectRowSecurityActiveSql(table.oid))).rows[0];
  if (security?.active) {
    throw new TargetError(
      `row-level security policies filter the rows of ${where} for role ${security.role}, so pg-rekey would rotate and verify only the rows they show — ` +
        'connect as the table owner (without FORCE ROW LEVEL SECURITY) or a role with BYPASSRLS',
    );
  }
  const child = (await client.query<{ child: string }>(selectInheritanceChildSql(table.oid))).rows[0];
  if (child) {
    throw new TargetError(
      `${where} has inheritance children (${child.child}), whose rows a read of it includes but its key does not cover, so pg-rekey cannot rotate it — ` +
        'configure each child as its own target (and keep rows out of the parent), or convert the hierarchy to declarative partitioning',
    );
  }
}

/**
 * The key-version columns a target migration added to a relation or to a
 * classic-inheritance ancestor (whose columns it inherits): those with a
 * foreign key to `registrySchema`.keys or with pg-rekey's reset trigger
 * (`reset_key_version('<column>')`). The migration adds each column with both
 * in one statement, so an application's own column of that name has neither;
 * either one suffices because a DBA may drop the foreign keys (the bench's
 * what-if does). An ancestor counts because a child created after its
 * parent's migration inherits the column but neither its foreign key nor its
 * triggers, and such a child is what a refused parent's targets are to become.
 */
export function selectRegistryReferencingColumnsSql(oid: number, registrySchema: string): Sql {
  return sql(
    `WITH RECURSIVE lineage(oid) AS (
       SELECT $1::oid
        UNION
       SELECT i.inhparent FROM pg_catalog.pg_inherits i JOIN lineage l ON i.inhrelid = l.oid
     )
     SELECT a.attname AS name
       FROM pg_catalog.pg_constraint c
       JOIN lineage l ON l.oid = c.conrelid
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype = 'f'
        AND c.confrelid = to_regclass(pg_catalog.format('%I.keys', $2::text))
     UNION
     -- tgargs holds the trigger's one argument, the column name, NUL-terminated.
     SELECT convert_from(substring(t.tgargs FROM 1 FOR length(t.tgargs) - 1), pg_catalog.getdatabaseencoding())::name
       FROM pg_catalog.pg_trigger t
       JOIN lineage l ON l.oid = t.tgrelid
      WHERE t.tgnargs = 1
        AND t.tgfoid = to_regprocedure(pg_catalog.format('%I.reset_key_version()', $2::text))`,
    [oid, registrySchema],
  );
}

/** The logical-replication publications that publish the table (directly, FOR ALL TABLES or by schema). */
export function selectPublicationsSql(qualified: QualifiedName): Sql {
  return sql(
    `SELECT DISTINCT pubname FROM pg_catalog.pg_publication_tables WHERE schemaname = $1 AND tablename = $2 ORDER BY 1`,
    [qualified.schema, qualified.name],
  );
}

/** The server's version as a number, e.g. 180004 for 18.4. */
export function selectServerVersionSql(): Sql {
  return sql(`SELECT current_setting('server_version_num')::int AS num`);
}

/** A member of a partitioned table's tree below the root: a leaf, or a partitioned table itself. */
export interface PartitionInfo extends QualifiedName {
  readonly parent: QualifiedName;
  readonly leaf: boolean;
}

/** Partitions of a partitioned table at every level, parents before their children. */
export function selectPartitionsSql(oid: number): Sql {
  return sql(
    `SELECT n.nspname AS schema, c.relname AS name, pn.nspname AS parent_schema, pc.relname AS parent_name,
            t.isleaf AS leaf, c.relkind
       FROM pg_catalog.pg_partition_tree($1::regclass) AS t
       JOIN pg_catalog.pg_class c ON c.oid = t.relid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
       JOIN pg_catalog.pg_class pc ON pc.oid = t.parentrelid
       JOIN pg_catalog.pg_namespace pn ON pn.oid = pc.relnamespace
      WHERE t.level > 0
      ORDER BY t.level, n.nspname, c.relname`,
    [oid],
  );
}

/**
 * The partitions of a partitioned table, for its target migration (each needs
 * its own index, built CONCURRENTLY and attached). Throws TargetError where
 * that migration cannot work: before PostgreSQL 18 (no NOT VALID foreign keys
 * on partitioned tables, and a validated one would scan the whole table under
 * an exclusive lock), and for foreign-table partitions (no index on them).
 */
export async function findPartitions(client: Queryable, table: TableInfo): Promise<PartitionInfo[]> {
  const where = formatQualifiedName(table);
  const version = await client.query<{ num: number }>(selectServerVersionSql());
  if (version.rows[0]!.num < 180000) {
    throw new TargetError(
      `${where} is partitioned, and before PostgreSQL 18 (this server is ${Math.floor(version.rows[0]!.num / 10000)}) ` +
        'a foreign key on a partitioned table cannot be added NOT VALID: it would scan the whole table under an exclusive lock. ' +
        'Upgrade to PostgreSQL 18 to rotate this table with pg-rekey',
    );
  }
  const rows = await client.query<{ schema: string; name: string; parent_schema: string; parent_name: string; leaf: boolean; relkind: string }>(
    selectPartitionsSql(table.oid),
  );
  const foreign = rows.rows.find((r) => r.relkind === 'f');
  if (foreign) {
    throw new TargetError(
      `partition ${formatQualifiedName(foreign)} of ${where} is a foreign table, which cannot carry the key-version index; pg-rekey cannot migrate this table`,
    );
  }
  return rows.rows.map((r) => ({
    schema: r.schema,
    name: r.name,
    parent: { schema: r.parent_schema, name: r.parent_name },
    leaf: r.leaf,
  }));
}

/**
 * The planner's row estimate of a table: pg_class.reltuples (-1 when never
 * analysed) and relpages. For a partitioned table, the sums over its leaf
 * partitions: the partitioned table's own reltuples stays -1 because
 * autovacuum never analyses it. `tuples` is -1 when any leaf was never analysed.
 */
export function selectRowEstimateSql(qualified: QualifiedName): Sql {
  return sql(
    `SELECT CASE WHEN bool_and(c.reltuples >= 0) THEN sum(c.reltuples) ELSE -1 END::float8 AS tuples,
            coalesce(sum(c.relpages), 0)::float8 AS pages
       FROM pg_catalog.pg_class c
      WHERE (c.oid = to_regclass($1) AND c.relkind <> 'p')
         OR c.oid IN (SELECT relid FROM pg_catalog.pg_partition_tree(to_regclass($1)) WHERE isleaf)`,
    [qualifiedName(qualified)],
  );
}

/** A column whose foreign key references the key registry: a key-version column some target migration added. */
export interface KeyVersionColumnInfo extends QualifiedName {
  versionColumn: string;
}

/**
 * Every key-version column in the database: the columns whose foreign key
 * references `registrySchema`.keys, whatever any config says (a partition's
 * cloned constraint is left out; its partitioned table stands for it).
 */
export function selectKeyVersionColumnsSql(registrySchema: string): Sql {
  return sql(
    `SELECT n.nspname AS schema, t.relname AS name, a.attname AS "versionColumn"
       FROM pg_catalog.pg_constraint c
       JOIN pg_catalog.pg_class t ON t.oid = c.conrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
       JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
      WHERE c.contype = 'f' AND c.conparentid = 0
        AND c.confrelid = to_regclass(pg_catalog.format('%I.keys', $1::text))
      ORDER BY 1, 2, 3`,
    [registrySchema],
  );
}
