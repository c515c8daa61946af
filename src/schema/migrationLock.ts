/**
 * The advisory locks of `pg-rekey migrate`, and the look a starting rotation
 * takes at the one `migrate down` holds (planRun.ts).
 */
import { sql, type Sql } from '../db/sql.js';

/**
 * Held (session-level) for the whole of any migrate. Our own id:
 * node-pg-migrate's default is shared with the host application's migrations,
 * which would make us wait on, or block, theirs.
 */
export const MIGRATION_LOCK_ID = 0x7067726b; // "pgrk"

/**
 * Held (session-level) by `migrate down` from before its "no rotation is open"
 * check to its end. Apart from MIGRATION_LOCK_ID so that a rotation is kept
 * from starting only by a down, never by the `migrate up` every deploy runs.
 */
const MIGRATE_DOWN_LOCK_ID = 0x70677264; // "pgrd"

/** Takes the down lock; waits only for rotations being started (a short transaction each). */
export function lockMigrateDownSql(): Sql {
  return sql('SELECT pg_advisory_lock($1)', [MIGRATE_DOWN_LOCK_ID]);
}

/**
 * Takes the down lock in shared mode until the end of the transaction, without
 * waiting: false while a `migrate down` holds it, from this host or another.
 */
export function tryMigrateDownLockSharedSql(): Sql {
  return sql('SELECT pg_try_advisory_xact_lock_shared($1) AS locked', [MIGRATE_DOWN_LOCK_ID]);
}
