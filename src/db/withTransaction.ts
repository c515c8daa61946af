/**
 * Transaction scoping: the only place BEGIN/COMMIT/ROLLBACK are issued.
 */

import pg from 'pg';
import { MARK_KEY_VERSION_WRITER } from './keyVersionWriter.js';

/** Where a transaction can run: a pool (a client is checked out for it) or a connected client. */
export type Queryable = pg.Pool | pg.PoolClient | pg.Client;

/** Options of `withTransaction`. */
export interface TransactionOptions {
  /** Default 'read committed': the compare-and-swap writes depend on its re-check (DESIGN §3). */
  isolation?: 'read committed' | 'repeatable read';
  /** BEGIN … READ ONLY: the server rejects any write (verify, status). */
  readOnly?: boolean;
  /** SET LOCAL lock_timeout: wait at most this long for a row or table lock (55P03 after). */
  lockTimeoutMs?: number;
  /** SET LOCAL statement_timeout: cancel any statement running longer (57014 after). */
  statementTimeoutMs?: number;
  /**
   * SET LOCAL idle_in_transaction_session_timeout: the server ends the session
   * (FATAL 25P03) when the client sends nothing for this long inside the
   * transaction — a client cut off by the network, whose transaction would
   * otherwise keep its locks until the server's TCP gives up, hours later.
   */
  idleInTransactionTimeoutMs?: number;
  /** Marks the transaction as pg-rekey setting key-version hints, which the guard triggers then keep (keyVersionWriter.ts). */
  writesKeyVersions?: boolean;
}

/** A pool has counters a client lacks; duck-typed because a second copy of pg breaks instanceof. */
function isPool(target: Queryable): target is pg.Pool {
  return target instanceof pg.Pool || typeof (target as { totalCount?: unknown }).totalCount === 'number';
}

function assertTimeout(name: string, value: number | undefined): void {
  // 0 means "no timeout" to the server; a negative or fractional value is a bug in the caller.
  if (value !== undefined && (!Number.isInteger(value) || value < 0)) {
    throw new RangeError(`${name} must be a non-negative integer of milliseconds, got ${value}`);
  }
}

/**
 * Runs `fn` inside one transaction and returns its result.
 *
 * BEGIN with the requested isolation and access mode, and the timeouts as SET
 * LOCAL in the same round trip (one simple-protocol query: the rotator runs a
 * transaction per batch, and each round trip there measurably costs
 * throughput), so they end with the transaction and never leak to the next
 * user of a pooled connection. COMMIT when `fn` resolves; ROLLBACK when it (or COMMIT) throws,
 * then rethrow the original error.
 *
 * Given a pool, a client is checked out and released here. If ROLLBACK itself
 * fails the connection is in an unknown state (broken socket, or a server that
 * still thinks a transaction is open), so it is destroyed with release(err)
 * rather than returned to the pool. Given a client, the caller owns it.
 */
export async function withTransaction<T>(
  target: Queryable,
  fn: (client: pg.PoolClient | pg.Client) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  assertTimeout('lockTimeoutMs', options.lockTimeoutMs);
  assertTimeout('statementTimeoutMs', options.statementTimeoutMs);
  assertTimeout('idleInTransactionTimeoutMs', options.idleInTransactionTimeoutMs);
  const owned = isPool(target);
  const client: pg.PoolClient | pg.Client = owned ? await target.connect() : target;
  // Set when the connection can no longer be trusted; passed to release() to destroy it.
  let broken: Error | undefined;
  try {
    try {
      await client.query(beginStatements(options));
    } catch (err) {
      // BEGIN failing means the connection is broken (or already inside a transaction).
      broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    }
    try {
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      try {
        // After a failed COMMIT the server has already ended the transaction;
        // ROLLBACK then only warns, so this is safe in every case.
        await client.query('ROLLBACK');
      } catch (rollbackErr) {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      }
      throw err; // the caller's error, not the rollback's: it is the cause
    }
  } finally {
    if (owned) (client as pg.PoolClient).release(broken);
  }
}

/**
 * `BEGIN …; SET LOCAL …` as one string. The timeouts are inlined, which is
 * safe because assertTimeout has checked they are non-negative integers; a
 * multi-statement string cannot take parameters.
 */
function beginStatements(options: TransactionOptions): string {
  const isolation = options.isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED';
  const statements = [`BEGIN ISOLATION LEVEL ${isolation}${options.readOnly ? ' READ ONLY' : ''}`];
  if (options.lockTimeoutMs !== undefined) statements.push(`SET LOCAL lock_timeout = '${options.lockTimeoutMs}ms'`);
  if (options.statementTimeoutMs !== undefined) statements.push(`SET LOCAL statement_timeout = '${options.statementTimeoutMs}ms'`);
  if (options.idleInTransactionTimeoutMs !== undefined) {
    statements.push(`SET LOCAL idle_in_transaction_session_timeout = '${options.idleInTransactionTimeoutMs}ms'`);
  }
  if (options.writesKeyVersions) statements.push(MARK_KEY_VERSION_WRITER);
  return statements.join('; ');
}
