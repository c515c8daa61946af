/**
 * The connection pool every pg-rekey component shares.
 */

import pg from 'pg';
import { connectTimeoutOf } from './connectTimeout.js';
import { keepAliveOf } from './keepAlive.js';
import { withSslModeAsApplied } from './sslMode.js';

/** The subset of a pino logger the db layer uses; any pino Logger satisfies it. */
export interface DbLogger {
  warn(obj: object, msg?: string): void;
}

/**
 * How long to wait for a server to accept a connection and answer the
 * start-up: a server that accepts TCP and never answers (a dead proxy, a
 * blackholed port) then fails the command instead of hanging it.
 */
export const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Session settings every connection gets before its first use. DateStyle: the
 * driver parses timestamps only in the ISO form, and a DateStyle set for the
 * role or database ('SQL, DMY', 'German'…) made it return null for every
 * time pg-rekey reads (status, keys list and history then failed). Setting
 * only the output format keeps the role's day/month order for input.
 * Transaction poolers track DateStyle per client (PgBouncer re-applies each
 * client's own), so this session SET cannot leak to an application's
 * connections behind one.
 */
const SESSION_SETTINGS = 'SET DateStyle = ISO';

/**
 * A pg.Client that applies SESSION_SETTINGS on connecting, and closes its
 * socket when connecting fails. pg-pool drops such a client without ending
 * it, and when the server still holds the socket open (it asked for a
 * password we do not have, and waits for one) the process would stay alive
 * until the server's authentication_timeout.
 */
class ClosingClient extends pg.Client {
  override connect(): Promise<pg.Client>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.Client> | void {
    // Until the caller holds the client, with its own 'error' listener, an error
    // event is this connect's failure: a backend terminated while the SET ran
    // sends its FATAL in the same packet as the SET's reply, when no query is
    // active, and an 'error' event nobody listens to would crash the process.
    let setupError: unknown;
    const onSetupError = (err: unknown) => {
      setupError ??= err;
    };
    this.on('error', onSetupError);
    const connected = super
      .connect()
      .then(() => this.query(SESSION_SETTINGS))
      .then(() => {
        if (setupError !== undefined) throw setupError;
        return this as pg.Client;
      })
      .catch((err: unknown) => {
        // Not awaited: after a failed connect, end() may wait for an 'end' event that never comes.
        void this.end().catch(() => undefined);
        throw err;
      });
    // Removed in the same tick as the caller gets the client (pg-pool adds its listener then).
    const handOver = <T>(result: T): T => {
      this.removeListener('error', onSetupError);
      return result;
    };
    if (!callback) {
      return connected.then(handOver, (err: unknown) => {
        throw handOver(err);
      });
    }
    connected.then(
      (client) => (callback as (err: Error | null, client?: pg.Client) => void)(null, handOver(client)),
      (err: Error) => (callback as (err: Error | null, client?: pg.Client) => void)(handOver(err)),
    );
  }
}

type ConnectCallback = Parameters<pg.Client['connect']>[0] & {};

/**
 * A connection that fails while checked out (the server terminated the
 * session, a failover, a pooler restart) emits 'error' on its client, and an
 * 'error' event nobody listens to crashes the process — a rotate then died
 * with a stack trace and exit 1 instead of resuming. The statement in flight
 * rejects on its own (and is retried or reported), and the pool drops the
 * client on release as it is no longer queryable: the event needs no handling.
 */
function ignoreCheckedOutClientError(): void {}

/** Options of `createPool`. */
export interface CreatePoolOptions {
  /** Shown in pg_stat_activity so a DBA can tell our sessions apart. Default 'pg-rekey'. */
  applicationName?: string;
  /** Maximum connections. Default 10 (pg's default); size it to the worker count. */
  max?: number;
  /** Give up connecting after this long. Default: the URL's connect_timeout, else 10 s. */
  connectionTimeoutMillis?: number;
  /** Close connections idle this long. Default 30 s. */
  idleTimeoutMillis?: number;
  /** Receives errors of idle clients (server restart, network drop). */
  logger?: DbLogger;
}

/**
 * Creates a pg.Pool for `databaseUrl`.
 *
 * Why the settings: a bounded connect timeout so an unreachable server fails
 * the command instead of hanging it (the URL's libpq connect_timeout, which
 * pg's JavaScript client would ignore, else 10 s); TCP keepalive after 30 s
 * of silence (keepAlive.ts), so a flow behind a NAT or load balancer stays
 * alive through a long statement and a dead one is noticed; application_name
 * so pg_stat_activity shows who holds a lock. A parameter given in the URL
 * (e.g. `?application_name=`) wins over these defaults, as pg parses the URL
 * last.
 *
 * pg emits 'error' on the pool when an idle client's connection breaks
 * (server restart, admin termination). An EventEmitter with no 'error'
 * listener throws, which would crash the process outside any try/catch; the
 * listener below turns it into a log line. The broken client is already
 * removed from the pool by pg, and the next checkout connects afresh.
 */
export function createPool(databaseUrl: string, options: CreatePoolOptions = {}): pg.Pool {
  const settings = connectionSettings(databaseUrl);
  const pool = new pg.Pool({
    Client: ClosingClient,
    ...settings,
    application_name: options.applicationName ?? 'pg-rekey',
    max: options.max ?? 10,
    connectionTimeoutMillis: options.connectionTimeoutMillis ?? settings.connectionTimeoutMillis,
    idleTimeoutMillis: options.idleTimeoutMillis ?? 30_000,
  });
  pool.on('error', (err: Error & { code?: string }) => {
    // Only code and message: the URL (with its password) is never logged.
    options.logger?.warn({ err: { message: err.message, code: err.code } }, 'idle database connection failed');
  });
  pool.on('connect', (client) => client.on('error', ignoreCheckedOutClientError));
  return pool;
}

/**
 * What every connection of pg-rekey's gets from the database URL, pooled or
 * not: the URL itself (its sslmode spelled as node-postgres applies it), the
 * connect timeout (the URL's libpq connect_timeout, else 10 s) and TCP
 * keepalive (the URL's libpq keepalives settings, else after 30 s).
 */
function connectionSettings(databaseUrl: string) {
  return {
    connectionString: withSslModeAsApplied(databaseUrl),
    connectionTimeoutMillis: connectTimeoutOf(databaseUrl) ?? CONNECT_TIMEOUT_MS,
    ...keepAliveOf(databaseUrl),
  };
}

/**
 * Connects a single pg.Client (for work that needs one session, such as
 * migrations under a session advisory lock) with the pool's connect timeout
 * and keepalive. On failure the client is closed, so a socket the server
 * still holds open (say, waiting for a password we do not have) cannot keep
 * the process alive.
 */
export async function connectClient(databaseUrl: string, applicationName: string, signal?: AbortSignal): Promise<pg.Client> {
  const settings = connectionSettings(databaseUrl);
  const client = new ClosingClient({ ...settings, application_name: applicationName });
  client.on('error', ignoreCheckedOutClientError);
  // Aborting closes the socket; the pending connect (or its SET) then fails.
  const abort = () => void client.end().catch(() => undefined);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    await client.connect();
  } catch (err) {
    if ((err as Error)?.message === 'timeout expired') {
      // pg.Client's own wording for connectionTimeoutMillis; say it as pg.Pool does,
      // which is what isConnectionError recognises.
      throw new Error(`Connection terminated due to connection timeout (no answer within ${settings.connectionTimeoutMillis / 1000} s)`, { cause: err });
    }
    throw err;
  } finally {
    signal?.removeEventListener('abort', abort);
  }
  return client;
}
