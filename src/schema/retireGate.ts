import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';

/** The latest event after which an earlier retirement rehearsal no longer counts. */
export interface KeyVersionChange {
  runId: number;
  /** 'rotate' (any finished rotation), 'promote', or 'fix-versions' (a verify that repaired key-version hints). */
  kind: 'rotate' | 'promote' | 'fix-versions';
  finishedAt: Date;
}

/** Whether the retirement rehearsal (`verify --without <id>`) required by `keys retire` is on record. */
export interface RetireGate {
  satisfied: boolean;
  /** The qualifying verify run, if any. */
  verifyRunId: number | null;
  /** The change the rehearsal must postdate (null: none yet, any rehearsal counts). */
  lastChange: KeyVersionChange | null;
  /** An unfinished rotation (running or stopped): data is still moving, no rehearsal can count. */
  openRotationId: number | null;
  /** The command that satisfies the gate. */
  command: string;
}

// A run that changed which key a row needs, or what the hints say: every
// finished rotation (a failed or aborted one still rewrote rows), a promotion
// (new writes from then on use another key), and a `verify --fix-versions` that
// repaired hints. The rehearsal itself is excluded, so a
// `verify --fix-versions --without <id>` does not invalidate its own result.
const CHANGES = `
  SELECT c.id, CASE WHEN c.kind = 'verify' THEN 'fix-versions' ELSE c.kind END AS kind, c.finished_at
    FROM %s.runs AS c
   WHERE c.finished_at IS NOT NULL AND c.status <> 'stopped'
     AND (c.kind = 'rotate'
          OR (c.kind = 'promote' AND c.status = 'succeeded')
          OR (c.kind = 'verify' AND c.options->>'fixVersions' = 'true' AND c.rows_changed > 0))`;

// The rehearsal: a successful verify that withheld the key and read every row
// of every target (not sampled, not limited to some targets — and not run with
// a config that lacks some of the columns retire checks), that started
// after the last change — a scan that began earlier may have read rows a
// rotation or rollback changed afterwards. Absent flags count as false.
function selectGateSql(schema: string, keyId: string, columns: readonly string[]): Sql {
  const s = quoteIdent(schema);
  const changes = CHANGES.replace('%s', s);
  return sql(
    `WITH changes AS (${changes}),
          last_change AS (SELECT * FROM changes ORDER BY finished_at DESC, id DESC LIMIT 1)
     SELECT (SELECT id::float8 FROM ${s}.runs WHERE kind = 'rotate' AND status IN ('running', 'stopped') LIMIT 1)
              AS "openRotationId",
            (SELECT id::float8 FROM last_change) AS "changeId",
            (SELECT kind FROM last_change) AS "changeKind",
            (SELECT finished_at FROM last_change) AS "changeAt",
            (SELECT v.id::float8 FROM ${s}.runs AS v
              WHERE v.kind = 'verify' AND v.status = 'succeeded'
                AND v.options->'without' ? $1
                AND coalesce(v.options->'sampled', 'false') = 'false'
                AND coalesce(v.options->'partial', 'false') = 'false'
                AND v.targets @> $2::text[]
                AND v.started_at > coalesce((SELECT max(c.finished_at) FROM changes AS c WHERE c.id <> v.id), '-infinity')
              ORDER BY v.finished_at DESC LIMIT 1) AS "verifyRunId"`,
    [keyId, columns],
  );
}

/**
 * Checks the retire gate for `keyId` (read-only): a successful, full
 * `pg-rekey verify --without <keyId>` that read every one of `columns`
 * ("schema.table.column"), recorded after the last rotation, promotion or
 * key-version repair, and no rotation unfinished. Run it under the registry
 * lock so no promotion slips in between the check and the retire.
 */
export async function checkRetireGate(db: Queryable, schema: string, keyId: string, columns: readonly string[]): Promise<RetireGate> {
  const row = (
    await db.query<{
      openRotationId: number | null;
      changeId: number | null;
      changeKind: KeyVersionChange['kind'] | null;
      changeAt: Date | null;
      verifyRunId: number | null;
    }>(selectGateSql(schema, keyId, columns))
  ).rows[0]!;
  const lastChange =
    row.changeId !== null && row.changeKind !== null && row.changeAt !== null
      ? { runId: row.changeId, kind: row.changeKind, finishedAt: row.changeAt }
      : null;
  return {
    satisfied: row.verifyRunId !== null && row.openRotationId === null,
    verifyRunId: row.verifyRunId,
    lastChange,
    openRotationId: row.openRotationId,
    command: `pg-rekey verify --without ${keyId}`,
  };
}

/** One line saying why the gate is closed and what to run, for the CLI and errors. */
export function describeClosedGate(gate: RetireGate): string {
  if (gate.openRotationId !== null) {
    return `rotation run ${gate.openRotationId} is unfinished — finish it ("pg-rekey rotate"), then run "${gate.command}"`;
  }
  const since = gate.lastChange
    ? ` since the last ${gate.lastChange.kind} (run ${gate.lastChange.runId}, ${gate.lastChange.finishedAt.toISOString()})`
    : '';
  return `no successful full retirement rehearsal${since} — run "${gate.command}" (no --sample, no --target, the same config), then retire again`;
}
