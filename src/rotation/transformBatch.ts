/**
 * The crypto step of a batch, pure and synchronous so it runs the same on the
 * main thread or in a worker thread: decide, per row and column, whether to
 * skip, re-encrypt, only fix the key version, or record a failure.
 */
import { hash } from 'node:crypto';
import type { Codec } from '../crypto/codec.js';
import { classifyForeignValue, decodeLegacy, type ForeignValueClass } from '../crypto/legacyValues.js';
import { DecryptError, type DecryptFailureReason } from '../errors.js';
import type { BatchWrites } from './batchSql.js';
import { batchLength, type ReadBatch } from './readRows.js';

/** What the transform needs besides the rows. */
export interface TransformContext {
  codec: Codec;
  targetKeyId: string;
  targetVersion: number;
  /** Key ids to treat as absent (never used as a source). */
  without?: readonly string[];
  /** Encrypt plaintext and legacy `ENC_V1:` values too (`rotate --encrypt-legacy`). */
  encryptLegacy?: boolean;
  /** Per encrypted column, its length limit in characters (varchar(n)), or null. */
  maxLengths?: readonly (number | null)[];
}

/**
 * Why a value was not rotated: a decrypt failure, a legacy/plaintext value left
 * alone, or a new value longer than its varchar(n) column allows (`too-long`:
 * for example plaintext encrypted by --encrypt-legacy, or a longer key id).
 */
export type RotateFailureReason = DecryptFailureReason | ForeignValueClass | 'too-long';

/** A value that could not be rotated: which row and column, and why; never the value. */
export interface ValueFailure {
  row: number;
  column: number;
  reason: RotateFailureReason;
}

/** The result of transforming a batch, column-wise like the batch. */
export interface TransformResult {
  /** Batch indexes of the rows with at least one column to write, ascending. */
  writeRows: number[];
  /** Per encrypted column, per write: the new value, or null to leave that column alone. */
  values: (string | null)[][];
  /** Per encrypted column, per write: the SHA-256 of the value read for a re-examined row, else null. */
  readDigests: (string | null)[][];
  /** Per encrypted column, per write: the source key id (or plaintext / legacy) of the value written, else null. */
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
export function transformBatch(batch: ReadBatch, ctx: TransformContext): TransformResult {
  const columns = batch.values.length;
  const result: TransformResult = {
    writeRows: [],
    values: batch.values.map(() => []),
    readDigests: batch.values.map(() => []),
    sources: batch.values.map(() => []),
    failures: [],
    skipped: 0,
    alreadyDone: 0,
  };
  const options = ctx.without && ctx.without.length > 0 ? { without: ctx.without } : {};
  const rowValues: (string | null)[] = new Array(columns);
  const rowDigests: (string | null)[] = new Array(columns);
  const rowSources: (string | null)[] = new Array(columns);
  for (let row = 0; row < batchLength(batch); row++) {
    let any = false;
    for (let col = 0; col < columns; col++) {
      rowValues[col] = rowDigests[col] = rowSources[col] = null;
      const value = batch.values[col]![row] ?? null;
      if (value === null || value === '') {
        result.skipped++;
        continue;
      }
      if (batch.versions[col]![row] === ctx.targetVersion) {
        result.alreadyDone++;
        continue;
      }
      let stored: string;
      let source: string;
      try {
        // Keeps the Fernet timestamp; a value already under the target key comes
        // back unchanged and only its key-version column is set.
        const next = ctx.codec.reencrypt(value, ctx.targetKeyId, options);
        stored = next.stored;
        source = next.fromKeyId;
      } catch (err) {
        if (!(err instanceof DecryptError)) throw err;
        const foreign = err.reason === 'wrong-format' ? classifyForeignValue(value) : undefined;
        if (!(ctx.encryptLegacy && (foreign === 'plaintext' || foreign === 'legacy'))) {
          result.failures.push({ row, column: col, reason: foreign ?? err.reason });
          continue;
        }
        // A value stored before encryption (or in the keyless ENC_V1 format):
        // encrypt it under the target key; its source is recorded as the class.
        const plaintext = foreign === 'legacy' ? decodeLegacy(value)! : value;
        stored = ctx.codec.encrypt(plaintext, { keyId: ctx.targetKeyId });
        source = foreign;
      }
      // The server would reject the whole batch (22001); this value alone is reported and left.
      const limit = ctx.maxLengths?.[col];
      if (limit != null && stored.length > limit) {
        result.failures.push({ row, column: col, reason: 'too-long' });
        continue;
      }
      rowValues[col] = stored;
      rowSources[col] = source;
      rowDigests[col] = batch.reexamined[row] ? digestOf(value) : null;
      any = true;
    }
    if (any) {
      result.writeRows.push(row);
      for (let col = 0; col < columns; col++) {
        result.values[col]!.push(rowValues[col] ?? null);
        result.readDigests[col]!.push(rowDigests[col] ?? null);
        result.sources[col]!.push(rowSources[col] ?? null);
      }
    }
  }
  return result;
}

/** The UPDATE's arrays for a transformed batch: the written rows' keys and versions, with their new values. */
export function writesOf(batch: ReadBatch, result: TransformResult): BatchWrites {
  return {
    keys: batch.keys.map((column) => result.writeRows.map((row) => column[row]!)),
    rowVersions: result.writeRows.map((row) => batch.rowVersions[row]!),
    values: result.values,
    readDigests: result.readDigests,
  };
}
