/**
 * Classification of PostgreSQL errors by SQLSTATE. Retry and error-mapping
 * decisions are made on these codes, never on message text: messages are
 * localised (lc_messages) and change between server versions.
 */

import pg from 'pg';

/** The SQLSTATEs pg-rekey reacts to, by name. */
export const SqlState = {
  serializationFailure: '40001',
  deadlockDetected: '40P01',
  lockNotAvailable: '55P03',
  queryCanceled: '57014',
  objectInUse: '55006',
  adminShutdown: '57P01',
  crashShutdown: '57P02',
  cannotConnectNow: '57P03',
  idleSessionTimeout: '57P05',
  idleInTransactionTimeout: '25P03',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  undefinedSchema: '3F000',
  invalidCatalogName: '3D000',
  insufficientPrivilege: '42501',
  uniqueViolation: '23505',
  duplicateTable: '42P07',
  duplicateDatabase: '42P04',
  readOnlySqlTransaction: '25006',
  tooManyConnections: '53300',
} as const;

/**
 * Worth retrying the same transaction: the server gave up on it because of
 * another session (serialization, deadlock), a lock wait hit our lock_timeout,
 * or our statement_timeout cancelled it. 57014 is also what a user's
 * pg_cancel_backend() raises; retrying after an explicit cancel is acceptable
 * because every batch is idempotent (compare-and-swap writes).
 */
const RETRYABLE = new Set<string>([
  SqlState.serializationFailure,
  SqlState.deadlockDetected,
  SqlState.lockNotAvailable,
  SqlState.queryCanceled,
]);

/** Node socket error codes that mean the connection, not the statement, failed. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/**
 * Syscalls whose failure means the server could not be reached. They make
 * otherwise ambiguous codes a connection failure: ENOENT or EACCES from
 * `connect` is a Unix socket that is missing or not ours to open, while from
 * a file read it is not a database problem at all.
 */
const CONNECT_SYSCALLS = new Set(['connect', 'getaddrinfo']);

/** Coarse category of a database error, for mapping to user-facing errors. */
export type SqlStateCategory =
  | 'retryable'
  | 'connection'
  | 'undefined-table'
  | 'undefined-schema'
  | 'insufficient-privilege'
  | 'unique-violation'
  | 'other';

/**
 * The SQLSTATE of a server error, or undefined for anything else. Follows
 * `cause` chains (our typed errors wrap pg errors) a few levels deep. Only pg's
 * DatabaseError (or an object carrying its `severity`) counts, because Node
 * socket errors also have a `code` and 'EPIPE' looks like a SQLSTATE.
 */
export function sqlstateOf(err: unknown): string | undefined {
  return serverErrorOf(err)?.code;
}

/** The HINT the server gave with the error (e.g. a migration's RAISE … USING HINT), if any. */
export function serverHintOf(err: unknown): string | undefined {
  const hint = serverErrorOf(err)?.hint;
  return typeof hint === 'string' && hint !== '' ? hint : undefined;
}

/** The server's error inside `err` or its causes (drivers and node-pg-migrate wrap it). */
function serverErrorOf(err: unknown): { code: string; hint?: unknown } | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current !== null && typeof current === 'object'; depth++) {
    const candidate = current as { code?: unknown; severity?: unknown; cause?: unknown; hint?: unknown };
    const isServerError = current instanceof pg.DatabaseError || typeof candidate.severity === 'string';
    if (isServerError && typeof candidate.code === 'string' && /^[0-9A-Z]{5}$/.test(candidate.code)) {
      return { code: candidate.code, hint: candidate.hint };
    }
    current = candidate.cause;
  }
  return undefined;
}

/** True when re-running the failed transaction may succeed (see RETRYABLE). */
export function isRetryable(err: unknown): boolean {
  const code = sqlstateOf(err);
  return code !== undefined && RETRYABLE.has(code);
}

/**
 * The server ended the session (FATAL, class 57P and 25P03): shut down or terminated
 * (57P01, also pg_terminate_backend), crashed (57P02), starting up or down
 * (57P03), or idle longer than the role's or database's idle_session_timeout
 * (57P05, PostgreSQL 14+), or idle inside a transaction longer than
 * idle_in_transaction_session_timeout (25P03; rotate's batches set it, see
 * rotateRange's idleTimeoutOf). 57P05 comes back to a statement sent on a pooled
 * connection the server had just ended, and failed a rotate as an internal
 * error (exit 70); a fresh connection is the cure, as for the others.
 */
const SESSION_ENDED = new Set<string>([
  SqlState.adminShutdown,
  SqlState.crashShutdown,
  SqlState.cannotConnectNow,
  SqlState.idleSessionTimeout,
  SqlState.idleInTransactionTimeout,
]);

/**
 * True when the connection is gone or unusable: SQLSTATE class 08, a session
 * the server ended (SESSION_ENDED), a socket error (including a failed connect to a
 * Unix socket), or pg's own "Connection terminated" and "not queryable"
 * errors (which carry no code). The caller should reconnect, not just retry. Set-up failures that
 * reconnecting cannot fix (no password, SSL) are connectSetupFailureOf's.
 */
export function isConnectionError(err: unknown): boolean {
  const code = sqlstateOf(err);
  if (code !== undefined) return code.startsWith('08') || SESSION_ENDED.has(code);
  let current: unknown = err;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    const { code: nodeCode, syscall } = current as { code?: unknown; syscall?: unknown };
    if (typeof nodeCode === 'string' && NETWORK_CODES.has(nodeCode)) return true;
    if (typeof nodeCode === 'string' && typeof syscall === 'string' && CONNECT_SYSCALLS.has(syscall)) return true;
    if (/^Connection terminated/.test(current.message)) return true;
    // pg's refusal to use a client whose connection already failed (the server
    // ended the session between two statements of a checked-out client).
    if (/^Client has encountered a connection error and is not queryable/.test(current.message)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Maps an error to its category; 'other' when it is not a classified database error. */
export function classifySqlState(err: unknown): SqlStateCategory {
  if (isConnectionError(err)) return 'connection';
  if (isRetryable(err)) return 'retryable';
  switch (sqlstateOf(err)) {
    case SqlState.undefinedTable:
      return 'undefined-table';
    case SqlState.undefinedSchema:
      return 'undefined-schema';
    case SqlState.insufficientPrivilege:
      return 'insufficient-privilege';
    case SqlState.uniqueViolation:
      return 'unique-violation';
    default:
      return 'other';
  }
}
