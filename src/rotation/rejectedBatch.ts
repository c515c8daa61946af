/**
 * What a rotate reports when the table itself rejects a batch: a clear
 * DatabaseError instead of an "internal error", with no value in it.
 */
import { sqlstateOf } from '../db/sqlstate.js';
import { DatabaseError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';

/** The fields of a server error that say where it came from (pg's DatabaseError has them). */
interface ServerErrorFields {
  message: string;
  /** CONTEXT: the call stack of functions, e.g. "PL/pgSQL function refuse() line 3 at RAISE". */
  where?: string;
  constraint?: string;
  column?: string;
}

// "PL/pgSQL function public.refuse_row() line 3 at RAISE", "SQL function \"f\" statement 1".
const FUNCTION_IN_CONTEXT = /(PL\/pgSQL|SQL) function ("[^"]+"|[^\s(]+)/;

/**
 * The table itself refusing a batch — a constraint, a trigger of the
 * application, a value the column cannot hold (SQLSTATE classes 22, 23, P0) —
 * is not a bug in pg-rekey: it becomes a DatabaseError (exit 69) that says
 * the batch rolled back and the next run resumes from the last checkpoint.
 *
 * The server's message is shown only when the server wrote it (a constraint
 * or type check; its DETAIL, which shows the row, never is), with any value of
 * the batch blanked. A message raised by a function (class P0, or any error
 * with a function in its CONTEXT) is free text the application built, likely
 * from NEW.email: a part of a value cannot be recognised and blanked, so such a
 * message is not shown at all — the report names the function and the
 * constraint, and says where to read the message.
 */
export function asBatchRejected(err: unknown, target: ResolvedTarget, batchValues: readonly (string | null)[]): unknown {
  const code = sqlstateOf(err);
  if (code === undefined || !/^(22|23|P0)/.test(code)) return err;
  const fields = err as ServerErrorFields;
  const raisedBy = typeof fields.where === 'string' ? FUNCTION_IN_CONTEXT.exec(fields.where) : null;
  const constraint = typeof fields.constraint === 'string' && fields.constraint !== '' ? ` (constraint ${fields.constraint})` : '';
  const cause =
    code.startsWith('P0') || raisedBy
      ? `an error raised by ${raisedBy ? `${raisedBy[1]} function ${raisedBy[2]}()` : 'a function'}${constraint} — ` +
        `its message is not shown because a trigger may build it from row values; read it in the server log, ` +
        `and see the table's triggers with \\d ${target.name} in psql`
      : `${redactValues(fields.message, batchValues)}${constraint}`;
  return new DatabaseError(
    `the database rejected a batch of ${target.name}: ${cause} (SQLSTATE ${code}); the batch was rolled back, ` +
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
