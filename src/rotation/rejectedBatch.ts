/**
 * What a rotate reports when the table itself rejects a batch: a clear
 * DatabaseError instead of an "internal error", with no value in it.
 */
import { sqlstateOf } from '../db/sqlstate.js';
import { DatabaseError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';

/**
 * The table itself refusing a batch — a constraint, a trigger of the
 * application, a value the column cannot hold (SQLSTATE classes 22, 23, P0) —
 * is not a bug in pg-rekey: it becomes a DatabaseError (exit 69) that says
 * the batch rolled back and the next run resumes from the last checkpoint.
 * Only the server's primary message is kept (its DETAIL may show the row), and
 * any value of the batch in it is blanked: an application trigger may well
 * RAISE with NEW.email in its message.
 */
export function asBatchRejected(err: unknown, target: ResolvedTarget, batchValues: readonly (string | null)[]): unknown {
  const code = sqlstateOf(err);
  if (code === undefined || !/^(22|23|P0)/.test(code)) return err;
  return new DatabaseError(
    `the database rejected a batch of ${target.name}: ${redactValues((err as Error).message, batchValues)} (SQLSTATE ${code}); the batch was rolled back, ` +
      'nothing of it was written — fix the cause (a constraint or trigger on the table?) and run rotate again: it resumes from the last checkpoint',
    { cause: err },
  );
}

/** `text` with every occurrence of one of `values` (old or new ciphertexts, legacy plaintexts) replaced by "[a value]". */
export function redactValues(text: string, values: readonly (string | null)[]): string {
  let redacted = text;
  // Longest first, so a value that contains another is blanked whole. Values
  // under six characters are left alone: they could be ordinary words of the
  // message (a ciphertext is never that short; a legacy plaintext might be).
  const candidates = [...new Set(values)].filter((v): v is string => v !== null && v.length >= 6).sort((a, b) => b.length - a.length);
  for (const value of candidates) if (redacted.includes(value)) redacted = redacted.split(value).join('[a value]');
  return redacted;
}
