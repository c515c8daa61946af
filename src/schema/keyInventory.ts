import type { TargetConfig } from '../config/loadConfig.js';
import { targetName } from '../config/loadConfig.js';
import type { Queryable } from '../db/withTransaction.js';
import { TargetError } from '../errors.js';
import { keyUsage, type ColumnUsage } from './keyUsage.js';
import { listRegisteredKeys } from './registry.js';

const DAY_MS = 86_400_000;

/** One key as `keys list` shows it: registry facts, age and row counts, never material. */
export interface KeyInventoryEntry {
  version: number | null;
  id: string;
  fingerprint: string;
  /** 'unregistered': configured but not yet used or added. */
  state: 'active' | 'retired' | 'unregistered';
  primary: boolean;
  configured: boolean;
  /** Whole days since registration; null when unregistered. */
  ageDays: number | null;
  /** Rows referencing the key, per "schema.table.column". */
  rows: Record<string, number>;
}

/** A target whose usage could not be counted (its migration is not applied yet). */
export interface UncountedTarget {
  target: string;
  reason: string;
}

/** The rotation schedule: when the primary was promoted and when the next rotation is due. */
export interface RotationDue {
  primary: string | null;
  promotedAt: Date | null;
  intervalDays: number;
  dueAt: Date | null;
  /** True when there is no primary or it is older than the interval. */
  overdue: boolean;
  /** Days until due (negative when overdue); null without a primary. */
  daysLeft: number | null;
}

/** Everything `keys list` reports. */
export interface KeyInventory {
  keys: KeyInventoryEntry[];
  /** Rows whose key version is unknown (NULL), per "schema.table.column". */
  unknown: Record<string, number>;
  columns: string[];
  uncounted: UncountedTarget[];
  due: RotationDue;
}

/**
 * Builds the key inventory: registered keys (and configured ones not yet
 * registered), their age, how many rows of each target column reference them,
 * the rows of unknown key version, and when the next rotation is due.
 * Targets whose migration has not been applied are listed as uncounted.
 */
export async function keyInventory(
  db: Queryable,
  options: {
    schema: string;
    configured: readonly { id: string; fingerprint: string }[];
    targets: readonly TargetConfig[];
    rotationIntervalDays: number;
    now?: Date;
  },
): Promise<KeyInventory> {
  const now = options.now ?? new Date();
  const registered = await listRegisteredKeys(db, options.schema);
  const usage: ColumnUsage[] = [];
  const uncounted: UncountedTarget[] = [];
  for (const target of options.targets) {
    try {
      usage.push(...(await keyUsage(db, options.schema, [target])));
    } catch (err) {
      if (!(err instanceof TargetError)) throw err;
      uncounted.push({ target: targetName(target), reason: err.message });
    }
  }
  const columnName = (u: ColumnUsage) => `${u.target}.${u.column}`;
  const rowsOf = (id: string) =>
    Object.fromEntries(usage.map((u) => [columnName(u), u.byKey[id] ?? 0])) as Record<string, number>;
  const keys: KeyInventoryEntry[] = registered.map((r) => ({
    version: r.version,
    id: r.keyId,
    fingerprint: r.fingerprint,
    state: r.state,
    primary: r.isPrimary,
    configured: options.configured.some((c) => c.id === r.keyId),
    ageDays: Math.floor((now.getTime() - r.createdAt.getTime()) / DAY_MS),
    rows: rowsOf(r.keyId),
  }));
  for (const c of options.configured) {
    if (registered.some((r) => r.keyId === c.id)) continue;
    keys.push({
      version: null,
      id: c.id,
      fingerprint: c.fingerprint,
      state: 'unregistered',
      primary: false,
      configured: true,
      ageDays: null,
      rows: rowsOf(c.id),
    });
  }
  const primary = registered.find((r) => r.isPrimary) ?? null;
  // Measured from promotion: a key registered long ago but promoted today is fresh.
  const since = primary ? (primary.promotedAt ?? primary.createdAt) : null;
  const dueAt = since ? new Date(since.getTime() + options.rotationIntervalDays * DAY_MS) : null;
  const due: RotationDue = {
    primary: primary?.keyId ?? null,
    promotedAt: since,
    intervalDays: options.rotationIntervalDays,
    dueAt,
    overdue: dueAt === null || dueAt.getTime() <= now.getTime(),
    daysLeft: dueAt ? Math.floor((dueAt.getTime() - now.getTime()) / DAY_MS) : null,
  };
  return {
    keys,
    unknown: Object.fromEntries(usage.map((u) => [columnName(u), u.unknown])),
    columns: usage.map(columnName),
    uncounted,
    due,
  };
}
