/**
 * The server's timeouts, as a DBA sets them for a role or database (ALTER ROLE
 * … SET statement_timeout), ending one of our statements or sessions: which
 * setting it was, by SQLSTATE (messages are localised), so the CLI can name it.
 */

import { sqlstateOf } from './sqlstate.js';

/** A timeout that ended a statement or session, and what a DBA can do about it. */
export interface SessionTimeout {
  readonly sqlstate: string;
  /** What happened, in words. */
  readonly what: string;
  /** The setting, and where it may come from. */
  readonly why: string;
  readonly setting: string;
  /** What became of the work, and what to do: the default is for a timeout that rolled a transaction back. */
  readonly advice?: string;
}

const TIMEOUTS: Record<string, Omit<SessionTimeout, 'sqlstate'>> = {
  // Also what a user's pg_cancel_backend() raises; the advice then does no harm.
  '57014': {
    what: 'the database cancelled a statement',
    why: 'it ran longer than the statement_timeout (rotate batches: --statement-timeout; anything else: the one set for pg-rekey\'s role or database), or another session cancelled it',
    setting: 'statement_timeout',
  },
  '55P03': {
    what: 'the database gave up waiting for a lock',
    why: 'another session held a lock this command needs for longer than the lock_timeout (rotate batches: --lock-timeout; anything else: the one set for pg-rekey\'s role or database)',
    setting: 'lock_timeout',
  },
  '25P04': {
    what: 'the database ended the session',
    why: 'a transaction lasted longer than the transaction_timeout set for pg-rekey\'s role or database',
    setting: 'transaction_timeout',
  },
  '25P03': {
    what: 'the database ended the session',
    why: "a transaction stayed idle longer than the idle_in_transaction_session_timeout set for pg-rekey's role or database (rotate batches: --statement-timeout, whose batches are retried on a fresh connection — after their retries, the network to the server is failing)",
    setting: 'idle_in_transaction_session_timeout',
  },
  // PostgreSQL 14+. pg-rekey's pooled connections sit idle between batches
  // (--pause-ms, --max-rate) and while it decrypts; the server ends them, and
  // the next statement sent on one fails with this.
  '57P05': {
    what: 'the database ended an idle session',
    why: "one of pg-rekey's connections stayed idle (between statements) longer than the idle_session_timeout set for pg-rekey's role or database",
    setting: 'idle_session_timeout',
    advice:
      'nothing of that statement ran, and what was committed before it is kept (a rotation resumes from its checkpoints). ' +
      "Run the command again; to keep it from recurring, turn idle_session_timeout off for pg-rekey's role (ALTER ROLE <role> SET idle_session_timeout = 0)",
  },
};

/** The timeout behind `err` (or its causes), if a server timeout ended it. */
export function sessionTimeoutOf(err: unknown): SessionTimeout | undefined {
  const sqlstate = sqlstateOf(err);
  const timeout = sqlstate === undefined ? undefined : TIMEOUTS[sqlstate];
  return timeout && sqlstate ? { sqlstate, ...timeout } : undefined;
}
