import { formatQualifiedName, quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import { withTransaction, type Queryable } from '../db/withTransaction.js';
import { KeyMismatchError, UsageError } from '../errors.js';
import type { TargetConfig } from '../config/loadConfig.js';
import { fingerprintSecretAsync } from '../crypto/fingerprint.js';
import type { Format } from '../crypto/formats.js';
import type { ResolvedKey } from '../crypto/keySources.js';
import { otherSpellings } from '../crypto/keySpellings.js';
import { assertEveryKeyVersionColumnConfigured, keyUsage, type ColumnUsage } from './keyUsage.js';
import { checkRetireGate, type RetireGate } from './retireGate.js';
import { insertLifecycleRunSql, type Actor } from './runsSql.js';

/** A key as the registry knows it: fingerprint and lifecycle, never material. */
export interface RegisteredKey {
  version: number;
  keyId: string;
  fingerprint: string;
  state: 'active' | 'retired';
  isPrimary: boolean;
  createdAt: Date;
  promotedAt: Date | null;
  retiredAt: Date | null;
}

/** A configured key as the registry needs it: id and fingerprint. */
export interface KeyIdentity {
  id: string;
  fingerprint: string;
  /**
   * True when the key's material depends on its id as well as its secret
   * (django-fernet-v2 derives one key per id from one SECRET_KEY), so another
   * id with the same secret is another key. Otherwise the same secret under a
   * new id is the same key, and registering it is refused.
   */
  derivedPerId?: boolean;
  /**
   * Fingerprints of the other spellings of the same key (keySpellings.ts):
   * a registration of any of them under another id is this key too.
   */
  aliases?: readonly string[];
}

const KEY_COLUMNS = `version, key_id AS "keyId", fingerprint, state, is_primary AS "isPrimary",
  created_at AS "createdAt", promoted_at AS "promotedAt", retired_at AS "retiredAt"`;

function selectKeysSql(schema: string): Sql {
  return sql(`SELECT ${KEY_COLUMNS} FROM ${quoteIdent(schema)}.keys ORDER BY version`);
}

// Serialises registrations and lifecycle changes (they are rare and short);
// readers are not blocked, and SHARE ROW EXCLUSIVE conflicts with itself.
function lockKeysSql(schema: string): Sql {
  return sql(`LOCK TABLE ${quoteIdent(schema)}.keys IN SHARE ROW EXCLUSIVE MODE`);
}

function insertKeySql(schema: string, key: KeyIdentity, primary: boolean): Sql {
  return sql(
    `INSERT INTO ${quoteIdent(schema)}.keys (key_id, fingerprint, is_primary, promoted_at)
     VALUES ($1, $2, $3, CASE WHEN $3 THEN now() END) RETURNING ${KEY_COLUMNS}`,
    [key.id, key.fingerprint, primary],
  );
}

/** Every registered key, oldest first. */
export async function listRegisteredKeys(db: Queryable, schema: string): Promise<RegisteredKey[]> {
  return (await db.query<RegisteredKey>(selectKeysSql(schema))).rows;
}

/**
 * Gives each configured key not registered yet the fingerprints of its other
 * spellings in the configured `formats` (keySpellings.ts), so that
 * assertKeysMatch refuses a registered aes-256-gcm key respelled under a new
 * id. Only unregistered keys: a registered one is checked against its own
 * fingerprint, and each alias costs a PBKDF2.
 */
export async function addSpellingAliases(
  identities: KeyIdentity[],
  resolved: readonly ResolvedKey[],
  registry: readonly RegisteredKey[],
  formats: readonly Format[],
): Promise<void> {
  const distinct = [...new Set(formats)];
  for (const [index, key] of resolved.entries()) {
    if (registry.some((r) => r.keyId === key.id)) continue;
    const spellings = distinct.flatMap((format) => otherSpellings(format, key.secret));
    if (spellings.length > 0) identities[index]!.aliases = await Promise.all(spellings.map((s) => fingerprintSecretAsync(s)));
  }
}

/**
 * Throws KeyMismatchError for the first configured key whose fingerprint
 * differs from its registration, or that is not registered yet but has the
 * fingerprint (or an alias's: another spelling of the same key) of a key
 * registered under another id — a leaked or retired secret pasted under a new
 * name, which a rotation would "rotate" to.
 */
export function assertKeysMatch(configured: readonly KeyIdentity[], registered: readonly RegisteredKey[]): void {
  for (const key of configured) {
    const known = registered.find((r) => r.keyId === key.id);
    if (known && known.fingerprint !== key.fingerprint) throw new KeyMismatchError(key.id);
    const twin =
      known || key.derivedPerId
        ? undefined
        : registered.find((r) => r.fingerprint === key.fingerprint || (key.aliases?.includes(r.fingerprint) ?? false));
    if (twin) throw new KeyMismatchError(key.id, twin);
  }
}

/**
 * Registers configured keys that the registry does not know yet, after checking
 * that every configured key matches its registration (nothing is written if one
 * does not). With no primary registered yet, the first configured key becomes it.
 * Each registration is recorded as an `add` run. Returns the registry afterwards
 * and the ids this call registered: decided under the registry lock, so a key
 * another process registered meanwhile is not reported as added here.
 */
export async function registerConfiguredKeys(
  db: Queryable,
  schema: string,
  configured: readonly KeyIdentity[],
  actor: Actor,
  only?: readonly string[],
): Promise<{ registry: RegisteredKey[]; added: string[] }> {
  return withTransaction(db, async (client) => {
    await client.query(lockKeysSql(schema));
    const registered = (await client.query<RegisteredKey>(selectKeysSql(schema))).rows;
    assertKeysMatch(configured, registered);
    const toRegister = configured.filter(
      (k) => !registered.some((r) => r.keyId === k.id) && (only === undefined || only.includes(k.id)),
    );
    let hasPrimary = registered.some((r) => r.isPrimary);
    for (const key of toRegister) {
      const primary = !hasPrimary && key === configured[0];
      hasPrimary ||= primary;
      const inserted = (await client.query<RegisteredKey>(insertKeySql(schema, key, primary))).rows[0]!;
      registered.push(inserted);
      await client.query(
        insertLifecycleRunSql(schema, {
          kind: 'add',
          targetKey: key.id,
          actor,
          summary: { fingerprint: key.fingerprint, primary },
        }),
      );
    }
    return { registry: registered, added: toRegister.map((k) => k.id) };
  });
}

/** Finds a registered, active key by id or throws a usage error saying what to do. */
export function requireActiveKey(registered: readonly RegisteredKey[], keyId: string): RegisteredKey {
  const key = registered.find((r) => r.keyId === keyId);
  if (!key) {
    throw new UsageError(`key ${keyId} is not registered — add it to the config and run "pg-rekey keys add ${keyId}"`);
  }
  if (key.state === 'retired') throw new UsageError(`key ${keyId} is retired and can no longer be used`);
  return key;
}

/**
 * Makes `keyId` the primary key; the previous primary stays active as
 * decrypt-only. Recorded as a `promote` run. A no-op (still recorded) if it already is.
 */
export async function promoteKey(db: Queryable, schema: string, keyId: string, actor: Actor, reason?: string) {
  return withTransaction(db, async (client) => {
    await client.query(lockKeysSql(schema));
    const registered = (await client.query<RegisteredKey>(selectKeysSql(schema))).rows;
    const key = requireActiveKey(registered, keyId);
    const previous = registered.find((r) => r.isPrimary) ?? null;
    const s = quoteIdent(schema);
    // Clear first: the one-primary unique index is checked per statement.
    await client.query(sql(`UPDATE ${s}.keys SET is_primary = false WHERE is_primary AND key_id <> $1`, [keyId]));
    await client.query(
      sql(`UPDATE ${s}.keys SET is_primary = true, promoted_at = now() WHERE key_id = $1 AND NOT is_primary`, [keyId]),
    );
    await client.query(
      insertLifecycleRunSql(schema, {
        kind: 'promote',
        targetKey: keyId,
        sourceKeys: previous ? [previous.keyId] : [],
        actor,
        reason,
        summary: { previousPrimary: previous?.keyId ?? null, alreadyPrimary: key.isPrimary },
      }),
    );
    return { key: keyId, previousPrimary: previous?.keyId ?? null, alreadyPrimary: key.isPrimary };
  });
}

/**
 * What `retireKey` did: retired (with the rehearsal that allowed it), or
 * refused with the rows that still need the key and the state of the gate.
 */
export type RetireOutcome =
  | { retired: true; key: string; gate: RetireGate }
  | { retired: false; key: string; referencing: ColumnUsage[]; unknown: ColumnUsage[]; gate: RetireGate };

/**
 * Retires `keyId` unless a target row still references it, any target row's
 * key version is unknown (then the key might still be needed), or the retire
 * gate is closed: no successful full `verify --without <keyId>` since the last
 * rotation, promotion or key-version repair (the references are hints; the
 * rehearsal proves every value decrypts without the key). The primary key
 * cannot be retired. Both outcomes are recorded as a `retire` run.
 */
export async function retireKey(
  db: Queryable,
  schema: string,
  keyId: string,
  targets: readonly TargetConfig[],
  actor: Actor,
  reason?: string,
): Promise<RetireOutcome> {
  return withTransaction(db, async (client) => {
    await client.query(lockKeysSql(schema));
    const registered = (await client.query<RegisteredKey>(selectKeysSql(schema))).rows;
    const key = requireActiveKey(registered, keyId);
    if (key.isPrimary) {
      throw new UsageError(`key ${keyId} is the primary key — promote another key first ("pg-rekey keys promote <id>")`);
    }
    // Refuses (TargetError) a config that misses a key-version column of the
    // database, or a target whose rows it cannot all see, as rotate and verify do.
    await assertEveryKeyVersionColumnConfigured(client, schema, targets);
    const usage = await keyUsage(client, schema, targets);
    const referencing = usage.filter((u) => (u.byKey[keyId] ?? 0) > 0);
    const unknown = usage.filter((u) => u.unknown > 0);
    // Under the keys lock taken above, so no promotion can land between this check and the retire.
    // The columns are named as verify records those it read (its targets' names
    // quoted where SQL needs it, as ResolvedTarget.name), not as the config
    // spells them: otherwise no rehearsal of a table like "People" would ever match.
    const columns = targets.flatMap((t) => t.columns.map((c) => `${formatQualifiedName({ schema: t.schema, name: t.table })}.${c}`));
    const gate = await checkRetireGate(client, schema, keyId, columns);
    const refused = referencing.length > 0 || unknown.length > 0 || !gate.satisfied;
    if (!refused) {
      await client.query(
        sql(`UPDATE ${quoteIdent(schema)}.keys SET state = 'retired', retired_at = now() WHERE key_id = $1`, [keyId]),
      );
    }
    await client.query(
      insertLifecycleRunSql(schema, {
        kind: 'retire',
        targetKey: keyId,
        actor,
        reason,
        status: refused ? 'failed' : 'succeeded',
        summary: refused
          ? { refused: true, usage, gate: { satisfied: gate.satisfied, lastChange: gate.lastChange, openRotationId: gate.openRotationId } }
          : { verifyRunId: gate.verifyRunId },
      }),
    );
    return refused ? { retired: false, key: keyId, referencing, unknown, gate } : { retired: true, key: keyId, gate };
  });
}
