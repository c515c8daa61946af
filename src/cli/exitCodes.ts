import { PgRekeyError, type ErrorCode } from '../errors.js';

/**
 * The process exit codes, in one place. Deploy hooks and cron branch on these,
 * so a code never changes meaning.
 */
export const ExitCode = {
  /** Done, nothing wrong. */
  OK: 0,
  /** Finished, but found failures (undecryptable rows, a key still in use, a due key). */
  FAILURES: 1,
  /** Bad usage, config or key: nothing was written. */
  USAGE_OR_CONFIG: 2,
  /** The pg_rekey schema is missing or incompatible: run `pg-rekey migrate up`. */
  SCHEMA: 3,
  /** Conflicts with another unfinished run. */
  CONFLICT: 4,
  /** The database could not be reached or refused us (connection, permissions). */
  DATABASE_UNAVAILABLE: 69,
  /** A bug: an error pg-rekey did not expect. */
  INTERNAL: 70,
  /** Stopped early (time limit or signal) at a clean boundary; run again to continue. */
  STOPPED_RESUMABLE: 75,
} as const;

/** One of {@link ExitCode}'s values. */
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

const byErrorCode: Record<ErrorCode, ExitCodeValue> = {
  USAGE: ExitCode.USAGE_OR_CONFIG,
  CONFIG_INVALID: ExitCode.USAGE_OR_CONFIG,
  KEY_SOURCE: ExitCode.USAGE_OR_CONFIG,
  KEY_INVALID: ExitCode.USAGE_OR_CONFIG,
  KEY_MISMATCH: ExitCode.USAGE_OR_CONFIG,
  TARGET_INVALID: ExitCode.USAGE_OR_CONFIG,
  DECRYPT_FAILED: ExitCode.FAILURES,
  SCHEMA_MISSING: ExitCode.SCHEMA,
  SCHEMA_INCOMPATIBLE: ExitCode.SCHEMA,
  RUN_CONFLICT: ExitCode.CONFLICT,
  LEASE_LOST: ExitCode.CONFLICT,
  DATABASE: ExitCode.DATABASE_UNAVAILABLE,
};

/** Maps any thrown value to the exit code the CLI ends with. */
export function exitCodeFor(error: unknown): ExitCodeValue {
  if (error instanceof PgRekeyError) return byErrorCode[error.code];
  return ExitCode.INTERNAL;
}
