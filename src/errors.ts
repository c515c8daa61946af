/**
 * Typed errors with stable codes. Every failure a user can act on has one class
 * here; the CLI maps `code` to an exit code in one place (src/cli/exitCodes.ts).
 *
 * Invariant: no message built here may contain key material, a plaintext or a
 * ciphertext. Messages name keys by id, rows by key, values never.
 */

/** Stable machine-readable codes; never rename one (scripts match on them). */
export type ErrorCode =
  | 'USAGE'
  | 'CONFIG_INVALID'
  | 'KEY_SOURCE'
  | 'KEY_INVALID'
  | 'KEY_MISMATCH'
  | 'DECRYPT_FAILED'
  | 'TARGET_INVALID'
  | 'SCHEMA_MISSING'
  | 'SCHEMA_INCOMPATIBLE'
  | 'RUN_CONFLICT'
  | 'LEASE_LOST'
  | 'DATABASE';

/** Base class of every error pg-rekey throws on purpose. */
export class PgRekeyError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Bad command-line usage that yargs itself cannot catch. */
export class UsageError extends PgRekeyError {
  constructor(message: string) {
    super('USAGE', message);
  }
}

/** The config file is missing, unreadable or invalid; `path` names the field. */
export class ConfigError extends PgRekeyError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** A key's secret reference (env:, file:, cmd:) could not be resolved. */
export class KeySourceError extends PgRekeyError {
  constructor(readonly keyId: string, message: string) {
    super('KEY_SOURCE', message);
  }
}

/** A resolved secret is not a valid key for its format (length, encoding). */
export class KeyInvalidError extends PgRekeyError {
  constructor(readonly keyId: string, message: string) {
    super('KEY_INVALID', message);
  }
}

/**
 * A configured key's fingerprint differs from the registered key of the same
 * id — or, given `sameSecretAs`, a new key id carries the secret of a key
 * registered under another id (a rotation to it would change nothing).
 */
export class KeyMismatchError extends PgRekeyError {
  constructor(readonly keyId: string, sameSecretAs?: { keyId: string; state: string }) {
    super(
      'KEY_MISMATCH',
      sameSecretAs
        ? `key ${keyId} has the same secret as the registered key ${sameSecretAs.keyId} (${sameSecretAs.state}) — ` +
            'a new key needs a new secret ("pg-rekey keys generate"); nothing was registered'
        : `key ${keyId} does not match the registered key ${keyId} — is the right secret deployed?`,
    );
  }
}

/**
 * Why a stored value could not be decrypted. These classes are stored in the
 * failures table and documented in the runbook's troubleshooting section.
 */
export type DecryptFailureReason =
  | 'not-a-string' // the value is not a string (a number, a Buffer, an object)
  | 'malformed' // right prefix, but corrupted, truncated, badly padded or trailing data
  | 'wrong-format' // not this target's format at all (another prefix, plaintext)
  | 'no-key' // no configured key can decrypt it (unknown key id, or none authenticates)
  | 'bad-mac' // the named/only key fails authentication: tampered or corrupted
  | 'expired'; // a TTL was asked for and the token is too old or from the future

/** A stored value could not be decrypted; the message never includes the value. */
export class DecryptError extends PgRekeyError {
  constructor(readonly reason: DecryptFailureReason, message: string) {
    super('DECRYPT_FAILED', message);
  }
}

/** A configured or requested target (table, key, columns) is unusable. */
export class TargetError extends PgRekeyError {
  constructor(message: string) {
    super('TARGET_INVALID', message);
  }
}

/** The pg_rekey schema is absent: run `pg-rekey migrate up`. */
export class SchemaMissingError extends PgRekeyError {
  constructor(message: string) {
    super('SCHEMA_MISSING', message);
  }
}

/** The pg_rekey schema is older or newer than this version of pg-rekey. */
export class SchemaIncompatibleError extends PgRekeyError {
  constructor(message: string) {
    super('SCHEMA_INCOMPATIBLE', message);
  }
}

/** Another unfinished run conflicts with the one requested. */
export class RunConflictError extends PgRekeyError {
  constructor(message: string) {
    super('RUN_CONFLICT', message);
  }
}

/** A worker's lease on a range was taken over; its batch was not committed. */
export class LeaseLostError extends PgRekeyError {
  constructor(message: string) {
    super('LEASE_LOST', message);
  }
}

/** A database failure not covered above (connection refused, permission denied). */
export class DatabaseError extends PgRekeyError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DATABASE', message, options);
  }
}
