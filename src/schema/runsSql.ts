import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';

/** Who did it, for the audit trail (the database user is recorded by the server). */
export interface Actor {
  osUser: string | null;
  host: string | null;
}

/** A finished lifecycle action (add, promote, retire) for the runs table. */
export interface LifecycleRun {
  kind: 'add' | 'promote' | 'retire';
  targetKey: string;
  sourceKeys?: string[];
  actor: Actor;
  reason?: string | undefined;
  status?: 'succeeded' | 'failed';
  summary?: Record<string, unknown>;
}

/** Inserts one finished lifecycle run: these actions are instantaneous. */
export function insertLifecycleRunSql(schema: string, run: LifecycleRun): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.runs
       (kind, trigger, reason, actor_os_user, actor_host, source_keys, target_key, status, finished_at, summary)
     VALUES ($1, 'manual', $2, $3, $4, $5, $6, $7, now(), $8)
     RETURNING id`,
    [
      run.kind,
      run.reason ?? null,
      run.actor.osUser,
      run.actor.host,
      run.sourceKeys ?? [],
      run.targetKey,
      run.status ?? 'succeeded',
      JSON.stringify(run.summary ?? {}),
    ],
  );
}
