/**
 * `migrate` needs one server session for its whole run: it holds a
 * session-level advisory lock, node-pg-migrate sets search_path once for
 * pg-rekey's unqualified migration SQL, and target migrations SET
 * lock_timeout before their ALTER TABLE and RESET it after. Through a
 * transaction- or statement-mode pooler (PgBouncer's `pool_mode =
 * transaction`, the usual setting for applications) each transaction may run
 * on another server connection. Seen through PgBouncer 1.18 in transaction
 * mode, with other clients at work: pg-rekey's tables and functions were
 * created in `public`, `migrate up` then reported success with the pgrekey
 * schema all but empty, every other command failed, and the migration lock
 * stayed held on a pooled server connection, where the next `migrate` would
 * wait for it. A lock_timeout set on one server connection and reset on
 * another would also stay on it, for the application's queries.
 *
 * So `migrate` first checks that its connection keeps its server session,
 * and refuses (exit 2, nothing written) when it does not. rotate, verify and
 * the other commands keep no state between transactions and work through
 * such a pooler.
 */
import type pg from 'pg';
import { DatabaseError, UsageError } from '../errors.js';
import { connectTimeoutOf } from './connectTimeout.js';
import { CONNECT_TIMEOUT_MS, connectClient } from './pool.js';
import { SqlState, sqlstateOf } from './sqlstate.js';

const backendPid = async (client: pg.ClientBase): Promise<number> =>
  (await client.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid;

/** The refusal: what was seen, and what to do instead. */
function pooledConnection(seen: string): UsageError {
  return new UsageError(
    `the database URL reaches PostgreSQL through a connection pooler in transaction or statement mode (${seen}) — ` +
      '"pg-rekey migrate" needs one server session for its whole run (its lock, search_path and lock_timeout are ' +
      "session settings). Run it with a URL to PostgreSQL itself, or to a session-mode pool; nothing was written. " +
      'rotate, verify and the other commands work through the pooler',
  );
}

/**
 * A second connection, in a transaction, within `ms` (0: no limit). A pooler
 * answers the connect itself and makes the first statement (pool.ts's SET,
 * then BEGIN) wait for a free server: a saturated pool would hold the check,
 * and the migration, until the pooler's own query_wait_timeout (PgBouncer:
 * 120 s). Giving up is the safe side: a session-mode pool would be fine, a
 * transaction-mode one is not. Resolves to undefined when the server has no
 * room for a second connection (a role's or the server's connection limit):
 * the check cannot be made, and a migration that needs one connection should
 * not fail on it.
 */
async function secondSessionWithin(databaseUrl: string, applicationName: string, ms: number): Promise<pg.Client | undefined> {
  const deadline = new AbortController();
  const timer = ms > 0 ? setTimeout(() => deadline.abort(), ms) : undefined;
  let other: pg.Client | undefined;
  const closeOnDeadline = () => void other?.end().catch(() => undefined);
  deadline.signal.addEventListener('abort', closeOnDeadline, { once: true });
  try {
    other = await connectClient(databaseUrl, applicationName, deadline.signal);
    await other.query('BEGIN');
    return other;
  } catch (err) {
    if (deadline.signal.aborted) {
      throw new DatabaseError(
        `a second connection to the database URL got no server session within ${ms / 1000} s (a saturated connection pooler?) — ` +
          '"pg-rekey migrate" opens one to check that its own keeps one server session; run it with a URL to PostgreSQL itself',
      );
    }
    await other?.end().catch(() => undefined);
    if (sqlstateOf(err) === SqlState.tooManyConnections) return undefined;
    // PgBouncer in statement mode refuses a transaction that spans statements,
    // in its own words (not the server's, so not localised).
    if (/pooling mode/i.test((err as Error).message)) throw pooledConnection('it refuses transactions: statement mode');
    throw err;
  } finally {
    clearTimeout(timer);
    deadline.signal.removeEventListener('abort', closeOnDeadline);
  }
}

/**
 * Throws a UsageError when `client`'s statements may run on more than one
 * server session. The check provokes what a pooler does: while a second
 * connection holds a transaction open, a pooler that just released `client`'s
 * server hands that same server to the second connection (PgBouncer reuses
 * the most recently released one), or moves `client` to another server. A
 * direct connection keeps its backend and never shares it. Costs one extra
 * connection for a moment, given at most the connect timeout to get a server.
 */
export async function assertDedicatedSession(client: pg.ClientBase, databaseUrl: string, applicationName: string): Promise<void> {
  const before = await backendPid(client);
  const other = await secondSessionWithin(databaseUrl, applicationName, connectTimeoutOf(databaseUrl) ?? CONNECT_TIMEOUT_MS);
  if (other === undefined) return;
  try {
    if ((await backendPid(other)) === before) throw pooledConnection('two connections were served by the same server session');
    // The second connection holds a server other than the one `client` released: this cannot wait for it.
    for (let i = 0; i < 3; i++) {
      if ((await backendPid(client)) !== before) throw pooledConnection("the connection's server session changed between transactions");
    }
    await other.query('ROLLBACK');
  } finally {
    await other.end();
  }
}
