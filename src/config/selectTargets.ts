import { formatQualifiedName } from '../db/quote.js';
import { UsageError } from '../errors.js';
import type { TargetConfig } from './loadConfig.js';

/** The configured targets a command works on, and whether that is fewer columns than configured. */
export interface SelectedTargets {
  chosen: TargetConfig[];
  partial: boolean;
}

/**
 * Picks the configured target columns named by --target filters (`table.column`,
 * `schema.table.column`, `table` or `schema.table`); no filter means all of them.
 */
export function selectTargets(targets: readonly TargetConfig[], filters: readonly string[] | undefined): SelectedTargets {
  if (targets.length === 0) throw new UsageError('no targets configured — add one with "pg-rekey target add"');
  if (!filters || filters.length === 0) return { chosen: [...targets], partial: false };
  // Also `schema.table.column` as runs record their columns (a name quoted where SQL needs it), which joinCommand hands back.
  const names = (f: string, t: TargetConfig, c: string) =>
    f === `${t.table}.${c}` || f === `${t.schema}.${t.table}.${c}` || f === t.table || f === `${t.schema}.${t.table}` ||
    f === `${formatQualifiedName({ schema: t.schema, name: t.table })}.${c}`;
  // Each filter must name something: one with a typo among others that match
  // would otherwise be dropped, and the command would report success on fewer
  // columns than were asked for.
  const unmatched = filters.filter((f) => !targets.some((t) => t.columns.some((c) => names(f, t, c))));
  if (unmatched.length > 0) {
    throw new UsageError(
      `--target ${unmatched.join(', ')} ${unmatched.length === 1 ? 'matches' : 'match'} no configured target column — ` +
        'name a configured table.column, schema.table.column or table (see "targets" in the config file)',
    );
  }
  const matches = (t: TargetConfig, c: string) => filters.some((f) => names(f, t, c));
  const chosen = targets
    .map((t) => ({ ...t, columns: t.columns.filter((c) => matches(t, c)) }))
    .filter((t) => t.columns.length > 0);
  const count = (list: readonly TargetConfig[]) => list.reduce((n, t) => n + t.columns.length, 0);
  return { chosen, partial: count(chosen) < count(targets) };
}
