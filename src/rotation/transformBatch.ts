/**
 * The crypto step of a batch, pure and synchronous so it runs the same on the
 * main thread or in a worker thread: decide, per row and column, whether to
 * skip, re-encrypt, only fix the key version, or record a failure.
 */
import { hash } from 'node:crypto';
import type { Codec } from '../crypto/codec.js';
import { classifyForeignValue, decodeLegacy, type ForeignValueClass } from '../crypto/legacyValues.js';
import { DecryptError, type DecryptFailureReason } from '../errors.js';
import type { RowKey, RowWrite } from './batchSql.js';

/** A row as read: its key, and per encrypted column the value and key version. */
export interface ReadRow {
  key: RowKey;
  /** The row version read (xmin as text): the compare-and-swap's token. */
  rowVersion: string;
  values: (string | null)[];
  versions: (number | null)[];
  /**
   * A row re-read after it lost a compare-and-swap: its write also carries the
   * digest of each value read, so a change to another column of the row does
   * not make it lose again (see casUpdateSql).
   */
  reexamined?: boolean;
}

/** What the transform needs besides the rows. */
export interface TransformContext {
  codec: Codec;
  targetKeyId: string;
  targetVersion: number;
  /** Key ids to treat as absent (never used as a source). */
  without?: readonly string[];
  /** Encrypt plaintext and legacy `ENC_V1:` values too (`rotate --encrypt-legacy`). */
  encryptLegacy?: boolean;
}

/** Why a value was not rotated: a decrypt failure, or a legacy/plaintext value left alone. */
export type RotateFailureReason = DecryptFailureReason | ForeignValueClass;

/** A value that could not be rotated: which row and column, and why; never the value. */
export interface ValueFailure {
  row: number;
  column: number;
  reason: RotateFailureReason;
}

/** The result of transforming a batch. */
export interface TransformResult {
  /** Rows with at least one column to write (others are left out). */
  writes: RowWrite[];
  /** Per write, per column, the source key id of the value written (or null). */
  sources: (string | null)[][];
  failures: ValueFailure[];
  /** NULL or empty values (skipped, counted). */
  skipped: number;
  /** Values already under the target key by their key version (nothing to do). */
  alreadyDone: number;
}

/** Hex SHA-256 of a value: a re-examined row's compare-and-swap token (see batchSql), and verify --fix-versions'. */
export function digestOf(value: string): string {
  // One-shot hash: about half the cost of createHash().update().digest() on this hot path.
  return hash('sha256', value, 'hex');
}

/** Transforms one batch of rows; throws only on programming errors, never on a bad value. */
export function transformBatch(rows: readonly ReadRow[], ctx: TransformContext): TransformResult {
  const result: TransformResult = { writes: [], sources: [], failures: [], skipped: 0, alreadyDone: 0 };
  const options = ctx.without && ctx.without.length > 0 ? { without: ctx.without } : {};
  rows.forEach((row, rowIndex) => {
    let any = false;
    const columns: RowWrite['columns'] = [];
    const sources: (string | null)[] = [];
    row.values.forEach((value, col) => {
      columns.push(null);
      sources.push(null);
      if (value === null || value === '') {
        result.skipped++;
        return;
      }
      if (row.versions[col] === ctx.targetVersion) {
        result.alreadyDone++;
        return;
      }
      try {
        // Keeps the Fernet timestamp; a value already under the target key comes
        // back unchanged and only its key-version column is set.
        const next = ctx.codec.reencrypt(value, ctx.targetKeyId, options);
        columns[col] = { value: next.stored, readDigest: row.reexamined ? digestOf(value) : null };
        sources[col] = next.fromKeyId;
        any = true;
      } catch (err) {
        if (!(err instanceof DecryptError)) throw err;
        const foreign = err.reason === 'wrong-format' ? classifyForeignValue(value) : undefined;
        if (ctx.encryptLegacy && (foreign === 'plaintext' || foreign === 'legacy')) {
          // A value stored before encryption (or in the keyless ENC_V1 format):
          // encrypt it under the target key; its source is recorded as the class.
          const plaintext = foreign === 'legacy' ? decodeLegacy(value)! : value;
          columns[col] = {
            value: ctx.codec.encrypt(plaintext, { keyId: ctx.targetKeyId }),
            readDigest: row.reexamined ? digestOf(value) : null,
          };
          sources[col] = foreign;
          any = true;
          return;
        }
        result.failures.push({ row: rowIndex, column: col, reason: foreign ?? err.reason });
      }
    });
    if (any) {
      result.writes.push({ key: row.key, rowVersion: row.rowVersion, columns });
      result.sources.push(sources);
    }
  });
  return result;
}
