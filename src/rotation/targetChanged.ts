/**
 * What a rotate, its dry run, a verify or a count by key reports when its target table
 * changed under it — dropped, renamed, its key-version column dropped (a
 * `migrate down` from another host), its column's type changed: a clear
 * TargetError naming the table instead of an "internal error" (exit 70, "a
 * bug in pg-rekey").
 */
import { sqlstateOf } from '../db/sqlstate.js';
import { TargetError } from '../errors.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';

// The table, schema, a column or a function over a column's type no longer
// resolves, or a column's type no longer fits the statement. These come from
// parsing the statement against the catalog, so their messages name objects
// and types, never a value.
const TARGET_CHANGED = new Set([
  '42P01', // undefined_table: dropped or renamed
  '3F000', // undefined_schema
  '42703', // undefined_column: a key-version or encrypted column dropped or renamed
  '42883', // undefined_function: e.g. convert_to() on a column that is no longer text
  '42804', // datatype_mismatch: a column whose type changed
]);

/** The command whose statement on the target failed: what was lost, and how to go on, differ. */
export type TargetChangedDuring = 'rotate' | 'rotate-start' | 'dry-run' | 'verify' | 'key-count';

const CONSEQUENCES: Record<TargetChangedDuring, { while: string; then: string }> = {
  rotate: {
    while: 'this rotation ran',
    then:
      'The batch in flight was rolled back; the batches committed before it are kept and the run stays open. Put the table back as the config names it ' +
      '(or fix the config), then run "pg-rekey rotate" again to resume; "pg-rekey verify" says what is wrong with the target',
  },
  'rotate-start': {
    while: 'this rotation started',
    then: 'No run was started and no value was changed. Put the table back as the config names it (or fix the config), then run "pg-rekey rotate" again',
  },
  'dry-run': {
    while: 'this dry run read it',
    then: 'Nothing was written, and the report is incomplete. Put the table back as the config names it (or fix the config), then run "pg-rekey rotate --dry-run" again',
  },
  'key-count': {
    while: 'its values were counted by key',
    then: 'Nothing was changed (no key was retired). Put the table back as the config names it (or fix the config), then run the command again',
  },
  verify: {
    while: 'this verify read it',
    then:
      'The verify is recorded as failed and proves nothing (key-version repairs committed before it are kept). Put the table back as the config names it ' +
      '(or fix the config), then run "pg-rekey verify" again',
  },
};

/**
 * Maps an error of a statement on `target`'s table (a batch read, the
 * compare-and-swap UPDATE, a verify chunk, a hint repair, the count by key of
 * `keys list` and `keys retire`) to a TargetError
 * when the table changed under `during`; any other error is returned
 * unchanged. For a rotate, only the batch in flight was lost: the statements
 * are read-only or inside the batch's transaction.
 */
export function asTargetChanged(err: unknown, target: Pick<ResolvedTarget, 'name'>, during: TargetChangedDuring = 'rotate'): unknown {
  const code = sqlstateOf(err);
  if (code === undefined || !TARGET_CHANGED.has(code)) return err;
  const { while: when, then } = CONSEQUENCES[during];
  return new TargetError(
    `${target.name} changed while ${when}: ${(err as Error).message} (SQLSTATE ${code}) — ` +
      `it was dropped, renamed or altered (or its target migration undone). ${then}`,
  );
}
