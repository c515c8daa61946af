/**
 * Proves the test harness and src/db against a real server: discovery,
 * per-file databases, withTransaction, lock timeouts and their SQLSTATE, and
 * identifier quoting with hostile names.
 */

import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { assertColumn, assertRelationExists, findTable } from '../../src/db/catalog.js';
import { parseQualifiedName, qualifiedName, quoteIdent } from '../../src/db/quote.js';
import { SqlState, classifySqlState, isConnectionError, isRetryable, sqlstateOf } from '../../src/db/sqlstate.js';
import { withTransaction } from '../../src/db/withTransaction.js';
import { TargetError } from '../../src/errors.js';
import { ADMIN_URL_ENV } from '../helpers/provided.js';
import { useTestDatabase } from '../helpers/database.js';
import { assertOnlyOwnTables } from './harnessShared.js';

const db = useTestDatabase('harness');

describe('test server', () => {
  it('answers select version() on the provided admin URL', async () => {
    const client = new pg.Client(inject('pgAdminUrl'));
    await client.connect();
    try {
      const { rows } = await client.query<{ version: string }>('select version()');
      expect(rows[0]?.version).toMatch(/^PostgreSQL \d+/);
    } finally {
      await client.end();
    }
  });

  it('passes the admin URL to forked workers through the environment too', () => {
    expect(process.env[ADMIN_URL_ENV]).toBe(inject('pgAdminUrl'));
  });

  it('gives this file its own database, cloned from the template', async () => {
    const { rows } = await db.current.pool.query<{ db: string }>('select current_database() as db');
    expect(rows[0]?.db).toBe(db.current.name);
    expect(db.current.name).not.toBe(inject('pgTemplateDatabase'));
    // The sibling file harness-parallel.test.ts creates the same table name.
    await assertOnlyOwnTables(db.current.pool, 'harness.test.ts');
  });
});

describe('withTransaction', () => {
  it('commits what fn wrote and returns its result', async () => {
    const pool = db.current.pool;
    await pool.query('create table tx_commit (id int primary key)');
    const result = await withTransaction(pool, async (client) => {
      await client.query('insert into tx_commit values (1), (2)');
      return 'done';
    });
    expect(result).toBe('done');
    const { rows } = await pool.query('select count(*)::int as n from tx_commit');
    expect(rows[0].n).toBe(2);
  });

  it('rolls back and rethrows when fn throws, and returns the client to the pool', async () => {
    const pool = db.current.pool;
    await pool.query('create table tx_rollback (id int primary key)');
    const boom = new Error('boom');
    await expect(
      withTransaction(pool, async (client) => {
        await client.query('insert into tx_rollback values (1)');
        throw boom;
      }),
    ).rejects.toBe(boom);
    const { rows } = await pool.query('select count(*)::int as n from tx_rollback');
    expect(rows[0].n).toBe(0);
    expect(pool.totalCount - pool.idleCount).toBe(0); // nothing still checked out
  });

  it('applies isolation, read-only and timeouts only for the transaction (SET LOCAL)', async () => {
    const client = await db.current.pool.connect();
    try {
      const inside = await withTransaction(
        client,
        async (c) =>
          (
            await c.query(
              `select current_setting('transaction_isolation') iso, current_setting('transaction_read_only') ro,
                      current_setting('lock_timeout') lt, current_setting('statement_timeout') st`,
            )
          ).rows[0],
        { isolation: 'repeatable read', readOnly: true, lockTimeoutMs: 100, statementTimeoutMs: 5000 },
      );
      expect(inside).toEqual({ iso: 'repeatable read', ro: 'on', lt: '100ms', st: '5s' });
      const after = await client.query(`select current_setting('lock_timeout') lt, current_setting('transaction_read_only') ro`);
      expect(after.rows[0]).toEqual({ lt: '0', ro: 'off' });
      await expect(withTransaction(client, (c) => c.query('create table ro_violation (x int)'), { readOnly: true })).rejects.toMatchObject({
        code: '25006', // read_only_sql_transaction
      });
    } finally {
      client.release();
    }
  });

  it('fails a blocked UPDATE with 55P03 after lock_timeout, classified retryable', async () => {
    const pool = db.current.pool;
    await pool.query('create table locked (id int primary key, v text)');
    await pool.query(`insert into locked values (1, 'a')`);
    const holder = await pool.connect();
    try {
      await holder.query('begin');
      await holder.query(`update locked set v = 'held' where id = 1`);
      const err: unknown = await withTransaction(
        pool,
        (client) => client.query(`update locked set v = 'blocked' where id = 1`),
        { lockTimeoutMs: 100 },
      ).then(
        () => new Error('expected the UPDATE to time out'),
        (e: unknown) => e,
      );
      expect(sqlstateOf(err)).toBe(SqlState.lockNotAvailable);
      expect(isRetryable(err)).toBe(true);
      expect(classifySqlState(err)).toBe('retryable');
      expect(isConnectionError(err)).toBe(false);
    } finally {
      await holder.query('rollback');
      holder.release();
    }
    const { rows } = await pool.query('select v from locked where id = 1');
    expect(rows[0].v).toBe('a');
  });

  it('cancels a statement after statement_timeout with 57014, classified retryable', async () => {
    const err: unknown = await withTransaction(db.current.pool, (c) => c.query('select pg_sleep(30)'), {
      statementTimeoutMs: 50,
    }).catch((e: unknown) => e);
    expect(sqlstateOf(err)).toBe(SqlState.queryCanceled);
    expect(isRetryable(err)).toBe(true);
  });

  it('classifies a missing table as 42P01, not retryable', async () => {
    const err: unknown = await db.current.pool.query('select * from no_such_table').catch((e: unknown) => e);
    expect(sqlstateOf(err)).toBe(SqlState.undefinedTable);
    expect(classifySqlState(err)).toBe('undefined-table');
    expect(isRetryable(err)).toBe(false);
  });
});

describe('identifiers', () => {
  const weird = { schema: 'Odd Schema', name: 'we"ird.name' };

  it('creates and queries a table named we"ird.name in a schema with a space', async () => {
    const pool = db.current.pool;
    await pool.query(`create schema ${quoteIdent(weird.schema)}`);
    await pool.query(`create table ${qualifiedName(weird)} (${quoteIdent('Id')} int primary key, ${quoteIdent('e"mail')} text)`);
    await pool.query({ text: `insert into ${qualifiedName(weird)} values ($1, $2)`, values: [1, 'x'] });
    const { rows } = await pool.query(`select ${quoteIdent('e"mail')} as v from ${qualifiedName(weird)}`);
    expect(rows).toEqual([{ v: 'x' }]);
    // The same name written in config form parses back to the same relation.
    expect(parseQualifiedName('"Odd Schema"."we""ird.name"')).toEqual(weird);
  });

  it('finds the table in pg_catalog with its columns and keys', async () => {
    const pool = db.current.pool;
    const table = await assertRelationExists(pool, weird);
    expect(table.kind).toBe('table');
    expect(table.columns.map((c) => c.name)).toEqual(['Id', 'e"mail']);
    expect(table.uniqueKeys).toEqual([expect.objectContaining({ columns: ['Id'], primary: true })]);
    expect(assertColumn(table, 'e"mail').typeName).toBe('text');
    expect(() => assertColumn(table, 'email')).toThrow(TargetError);
  });

  it('lists only unique keys usable for keyset paging', async () => {
    const pool = db.current.pool;
    await pool.query(`create table people (
        tenant int not null, id uuid not null, email text, code text not null, nick text,
        primary key (tenant, id))`);
    await pool.query('create unique index people_code on people (code)');
    await pool.query('create unique index people_nick on people (nick)'); // nullable: unusable
    await pool.query('create unique index people_lower on people (lower(code))'); // expression
    await pool.query(`create unique index people_partial on people (code) where tenant > 0`); // partial
    const table = await findTable(pool, 'public', 'people');
    expect(table?.uniqueKeys).toEqual([
      { indexName: 'people_pkey', columns: ['tenant', 'id'], primary: true },
      { indexName: 'people_code', columns: ['code'], primary: false },
    ]);
    expect(table?.columns.find((c) => c.name === 'email')).toMatchObject({ notNull: false, type: 'text' });
  });

  it('reports a missing table or schema as TargetError, and a view as not a table', async () => {
    const pool = db.current.pool;
    expect(await findTable(pool, 'public', 'nope')).toBeNull();
    await expect(assertRelationExists(pool, { schema: 'public', name: 'nope' })).rejects.toThrow(/table public\.nope does not exist/);
    await expect(assertRelationExists(pool, { schema: 'nope', name: 't' })).rejects.toThrow(/schema nope does not exist/);
    await pool.query('create view people_v as select 1 as x');
    await expect(findTable(pool, 'public', 'people_v')).rejects.toThrow(TargetError);
  });
});

describe('parseQualifiedName and quoteIdent', () => {
  it.each([
    ['people', { schema: 'public', name: 'people' }],
    ['People', { schema: 'public', name: 'people' }], // unquoted folds, as in SQL
    ['app.People', { schema: 'app', name: 'people' }],
    ['"App"."People"', { schema: 'App', name: 'People' }],
    ['public."a.b"', { schema: 'public', name: 'a.b' }],
    ['"we""ird.name"', { schema: 'public', name: 'we"ird.name' }],
  ])('parses %s', (text, expected) => {
    expect(parseQualifiedName(text)).toEqual(expected);
  });

  it.each(['', 'a.b.c', 'a.', '.a', '"unterminated', '""', 'a b', '"a"b', `x${'y'.repeat(63)}`])('rejects %j', (text) => {
    expect(() => parseQualifiedName(text)).toThrow(TargetError);
  });

  it('quotes and rejects what the server would not keep verbatim', () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(() => quoteIdent('')).toThrow(TargetError);
    expect(() => quoteIdent('a\0b')).toThrow(TargetError);
    expect(() => quoteIdent('é'.repeat(32))).toThrow(TargetError); // 64 bytes
  });
});
