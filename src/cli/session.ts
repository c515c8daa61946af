import { hostname, userInfo } from 'node:os';
import type pg from 'pg';
import type { ResolvedConfig } from '../config/loadConfig.js';
import { selectTargets } from '../config/selectTargets.js';
import { assertTargetPrivileges, resolveTargets, type ResolvedTarget, type TargetWrites } from '../schema/resolveTarget.js';
import { fingerprintSecretAsync } from '../crypto/fingerprint.js';
import type { Format } from '../crypto/formats.js';
import { getFormatHandler } from '../crypto/getFormatHandler.js';
import { keyringFromResolved, type Keyring } from '../crypto/keyring.js';
import { resolveKeys, type ResolvedKey } from '../crypto/keySources.js';
import { connectSetupFailureOf, type ConnectSetupFailure } from '../db/connectFailure.js';
import { cancelStatementsOnAbort } from '../db/cancelOnAbort.js';
import { closeSilentConnectionsOnStop } from '../db/silentConnections.js';
import { createPool } from '../db/pool.js';
import { sessionTimeoutOf } from '../db/sessionTimeout.js';
import { classifySqlState, isConnectionError, SqlState, sqlstateOf } from '../db/sqlstate.js';
import { DatabaseError, PgRekeyError, UsageError } from '../errors.js';
import {
  addSpellingAliases,
  assertKeysMatch,
  listRegisteredKeys,
  registerConfiguredKeys,
  type KeyIdentity,
  type RegisteredKey,
} from '../schema/registry.js';
import type { Actor } from '../schema/runsSql.js';
import { assertSchemaCurrent } from '../schema/schemaVersion.js';
import type { CommandContext } from './context.js';

/** A configured key with its fingerprint and, if registered, its registration. */
export interface ConfiguredKey extends KeyIdentity {
  registered: RegisteredKey | null;
}

/** What a database command works with once the schema and keys are checked. */
export interface Session {
  readonly config: ResolvedConfig;
  readonly pool: pg.Pool;
  /** pg-rekey's schema (config.schema). */
  readonly schema: string;
  /** Who is acting, for runs rows. */
  readonly actor: Actor;
  /** The registry as of the last registration or refresh, oldest first. */
  readonly registry: readonly RegisteredKey[];
  /** Configured keys in config order (empty when opened with `keys: false`). */
  readonly keys: readonly ConfiguredKey[];
  /**
   * The keyring of `format` over the configured keys that are not retired,
   * primary first: `primary` if given, else the registry's primary when it is
   * configured, else config order. Secrets stay in this process.
   */
  keyring(format: Format, options?: { primary?: string }): Promise<Keyring>;
  /**
   * The resolved secrets behind `keyring(format, options)`, in the same order,
   * for the rotator's crypto threads (they build their own codecs in-process).
   * The secrets were fingerprint-checked against the registry at start-up.
   */
  keyringSecrets(format: Format, options?: { primary?: string }): Promise<readonly ResolvedKey[]>;
  /** Re-reads the registry (after a lifecycle change) and returns it. */
  refreshRegistry(): Promise<readonly RegisteredKey[]>;
  /** The start-up is over: from now on a stop no longer cancels statements (see SessionOptions.stopSignal). */
  endStartUp(): void;
}

/** How much of the start-up sequence a command needs. */
export interface SessionOptions<Checked = undefined> {
  /**
   * Resolve configured keys and check their fingerprints against the registry
   * (default true). Commands that use no key and write no key-related row may skip it.
   */
  keys?: boolean;
  /**
   * Which configured keys to register if the registry does not know them yet:
   * 'all' (commands that use the keys: rotate, verify), a list of ids, or 'none' (default).
   */
  register?: 'all' | 'none' | readonly string[];
  /** Pool size (default 4); the rotator sizes it to its workers. */
  maxConnections?: number;
  /**
   * The command's own checks of its input against the database (its targets)
   * and the keys (--to, --without), run before the first write (the key
   * registrations above): bad input then exits with nothing written. What it
   * returns is handed to the command.
   */
  checkBeforeWriting?: (pool: pg.Pool, config: ResolvedConfig, keys: KeysBeforeWriting) => Promise<Checked>;
  /**
   * Aborted when the command is asked to stop (a signal, a deadline). Until the
   * command calls `session.endStartUp()` a stop cancels the statement running
   * then — a lock wait included — and each step of the start-up checks it
   * first, so the command fails promptly with the signal's reason or the
   * driver's 57014 (see isStopDuringStartUp) instead of waiting.
   */
  stopSignal?: AbortSignal;
}

/** Whether `err` is how a stop (SessionOptions.stopSignal) ended the start-up, rather than a failure of its own. */
export function isStopDuringStartUp(err: unknown, stopSignal: AbortSignal): boolean {
  return stopSignal.aborted && (err === stopSignal.reason || sqlstateOf(err) === SqlState.queryCanceled);
}

/** What checkBeforeWriting knows of the keys: the configured ones (fingerprinted) and the registry, before any registration. */
export interface KeysBeforeWriting {
  readonly configured: readonly KeyIdentity[];
  readonly registry: readonly RegisteredKey[];
}

/** The targets a command works on, resolved (checkChosenTargets), and whether --target narrowed them. */
export interface ChosenTargets {
  targets: ResolvedTarget[];
  partial: boolean;
}

/**
 * checkBeforeWriting of the commands on targets (rotate, verify): the chosen
 * targets, resolved (exit 2 if one cannot be), and the role's privileges to
 * read them and make the `writes` the command will (exit 69 if missing).
 */
export function checkChosenTargets(
  filters: readonly string[] | undefined,
  writes: TargetWrites = 'none',
): NonNullable<SessionOptions<ChosenTargets>['checkBeforeWriting']> {
  return async (pool, config) => {
    const { chosen, partial } = selectTargets(config.targets, filters);
    const targets = await resolveTargets(pool, chosen, config.schema);
    await assertTargetPrivileges(pool, targets, writes);
    return { targets, partial };
  };
}

/**
 * Every configured key that is not retired goes into the keyring of every
 * target format (see Session.keyring), so each must be a valid key for each
 * configured target's format. Throws KeyInvalidError (exit 2) naming the key, never the secret.
 */
function assertKeysFitTargetFormats(resolved: readonly ResolvedKey[], registry: readonly RegisteredKey[], config: ResolvedConfig): void {
  const formats = new Set(config.targets.map((t) => t.format));
  for (const key of resolved) {
    if (registry.find((r) => r.keyId === key.id)?.state === 'retired') continue;
    for (const format of formats) getFormatHandler(format).validateKey(key.id, key.secret);
  }
}

/**
 * A key's secret can be checked only against a target's format, and a
 * registered fingerprint is permanent: with no target configured, a malformed
 * secret (say, not a Fernet key) would be registered unchecked, and the right
 * one then refused for good as "does not match the registered key". Throws
 * UsageError (exit 2) when any of `ids` is not registered yet and no target is
 * configured; registered keys are not registered again, so they pass.
 */
export function assertTargetsToCheckKeysAgainst(
  config: ResolvedConfig,
  registry: readonly RegisteredKey[],
  ids: readonly string[],
): void {
  if (config.targets.length > 0) return;
  const unchecked = ids.find((id) => !registry.some((r) => r.keyId === id));
  if (unchecked === undefined) return;
  throw new UsageError(
    `no target is configured, so key ${unchecked} cannot be checked against a format before it is registered (for good) — ` +
      'add the encrypted columns first with "pg-rekey target add", then run this again',
  );
}

/** The actor of this CLI process: OS user and host (the database user is recorded by the server). */
export function cliActor(): Actor {
  let osUser: string | null = null;
  try {
    osUser = userInfo().username;
  } catch {
    // No passwd entry for the uid (some containers): record the host only.
  }
  return { osUser, host: hostname() };
}

/** What to do about each connection set-up failure (see connectSetupFailureOf); never quotes the URL. */
function connectSetupError(failure: ConnectSetupFailure, err: unknown): PgRekeyError {
  switch (failure) {
    case 'url-invalid':
      // Exit 2: the URL is configuration. Its text may hold a password, so it is not quoted.
      return new UsageError(
        'the database URL (--database-url or DATABASE_URL) cannot be parsed — fix it: postgres://user:password@host:5432/dbname, ' +
          'with a port from 1 to 65535 and special characters in the user or password percent-encoded',
      );
    case 'password-missing':
      return new DatabaseError(
        'database unavailable: the server needs a password and none was given — put it in the database URL ' +
          '(postgres://user:password@host/dbname), or in PGPASSWORD or ~/.pgpass',
        { cause: err },
      );
    case 'ssl-unsupported':
      return new DatabaseError(
        'database unavailable: the server does not support SSL connections, and the database URL asks for SSL (sslmode) — ' +
          'enable SSL on the server, or remove sslmode from the URL if an unencrypted connection is acceptable',
        { cause: err },
      );
    case 'tls':
      return new DatabaseError(
        `database unavailable: the SSL connection failed: ${(err as Error).message} — pg-rekey checks the server's certificate and host name ` +
          'whenever the database URL asks for SSL (sslmode=require, prefer and verify-ca are checked as verify-full, unlike libpq): ' +
          'name the CA that signed it with sslrootcert=/path/to/ca.pem in the URL (on Amazon RDS, the region\'s certificate bundle), ' +
          "or, to encrypt without checking the certificate as libpq's sslmode=require does, add uselibpqcompat=true to the URL",
        { cause: err },
      );
  }
}

/** Turns driver errors into typed errors so the CLI exits 69 (2 for an unparseable URL) with a clear message, never 70. */
export function asDatabaseError(err: unknown): unknown {
  if (err instanceof PgRekeyError) return err;
  const setupFailure = connectSetupFailureOf(err);
  if (setupFailure) return connectSetupError(setupFailure, err);
  const code = sqlstateOf(err);
  // Before the connection errors: idle_session_timeout's 57P05 is one of them, and its message should name the setting.
  const timeout = sessionTimeoutOf(err);
  if (timeout) {
    // A setting of the DBA's, not a bug: exit 69 naming it, rather than an internal error.
    const advice =
      timeout.advice ?? `its transaction was rolled back. Run the command again, or raise ${timeout.setting} for pg-rekey's role (ALTER ROLE <role> SET ${timeout.setting} = …)`;
    return new DatabaseError(`${timeout.what}: ${(err as Error).message} (SQLSTATE ${timeout.sqlstate}) — ${timeout.why}; ${advice}`, { cause: err });
  }
  if (isConnectionError(err) || classifySqlState(err) === 'insufficient-privilege' || code === '28P01' || code === '3D000') {
    return new DatabaseError(`database unavailable: ${(err as Error).message}${code ? ` (SQLSTATE ${code})` : ''}`, {
      cause: err,
    });
  }
  if (code === SqlState.deadlockDetected || code === SqlState.serializationFailure) {
    // Another session's doing, not a bug: the server aborted our transaction so
    // that the other could go on. Rotation batches retry these; a command's
    // other statements (keys retire's gate reading the targets under the
    // registry lock, say) end here.
    return new DatabaseError(
      `${code === SqlState.deadlockDetected ? 'a deadlock with another session' : 'a conflict with a concurrent transaction'}: ${(err as Error).message} (SQLSTATE ${code}) — ` +
        "the database rolled the statement's transaction back (nothing of that transaction was written) so that another session's could go on, " +
        'e.g. an application migration locking the same tables in the opposite order. Run the command again once that session is done',
      { cause: err },
    );
  }
  if (code === SqlState.tooManyConnections) {
    // max_connections, or the role's or database's CONNECTION LIMIT: most often
    // reached by rotate, whose every worker holds a connection of its own.
    return new DatabaseError(
      `the database refused another connection: ${(err as Error).message} (SQLSTATE ${code}) — pg-rekey opens one per rotate worker: ` +
        "lower --workers, or raise max_connections or the role's CONNECTION LIMIT; a rotation resumes from its checkpoints",
      { cause: err },
    );
  }
  if (code === SqlState.readOnlySqlTransaction) {
    // The usual cause is a URL pointing at a hot standby; nothing was written.
    return new DatabaseError(
      `the database refuses writes: ${(err as Error).message} (SQLSTATE ${code}) — is this a standby, or is default_transaction_read_only on? ` +
        'Connect pg-rekey to the primary',
      { cause: err },
    );
  }
  return err;
}

/**
 * After a stop, how long a connection may stay silent before it is presumed
 * dead and closed: ample for a cancelled statement's answer (or a batch or
 * page finishing) to come back over a working network.
 */
const STOP_SILENCE_MS = 30_000;

/**
 * The start-up every database command shares, in this order: open a pool,
 * check the pg_rekey schema is current (SchemaMissing/Incompatible → exit 3),
 * resolve the configured keys and fingerprint them, check every fingerprint
 * against the registry (KeyMismatchError → exit 2, before anything is
 * written), when keys are to be registered check each fits every target
 * format (KeyInvalidError → exit 2), run the command's checkBeforeWriting,
 * then register the requested first-used keys (each an `add` run).
 * Runs `fn` with the session and always ends the pool.
 */
export async function withSession<T, Checked = undefined>(
  ctx: CommandContext,
  options: SessionOptions<Checked>,
  fn: (session: Session, checked: Checked) => Promise<T>,
): Promise<T> {
  const config = await ctx.config();
  const pool = createPool(ctx.databaseUrl(), {
    applicationName: 'pg-rekey',
    max: options.maxConnections ?? 4,
    logger: ctx.logger,
  });
  const canceller = options.stopSignal ? cancelStatementsOnAbort(pool, options.stopSignal) : undefined;
  // The cancel above, and a batch or page finishing, need the server to answer:
  // when the network path has died, a stop still ends the command (exit 69).
  const stopWatch = options.stopSignal ? closeSilentConnectionsOnStop(pool, options.stopSignal, STOP_SILENCE_MS) : undefined;
  // A stop between steps is honoured before the next one starts (nothing is written after it).
  const checkStop = () => options.stopSignal?.throwIfAborted();
  try {
    await assertSchemaCurrent(pool, config.schema);
    checkStop();
    const resolved: ResolvedKey[] =
      options.keys === false ? [] : await resolveKeys(config.keys, { baseDir: config.baseDir, env: ctx.env });
    // Keys serve every target; only when every target derives a key per id can two ids share a secret.
    const derivedPerId = config.targets.length > 0 && config.targets.every((t) => t.format === 'django-fernet-v2');
    const identities: KeyIdentity[] = await Promise.all(
      resolved.map(async (k) => ({ id: k.id, fingerprint: await fingerprintSecretAsync(k.secret), derivedPerId })),
    );
    checkStop();
    const actor = cliActor();
    let registry = await listRegisteredKeys(pool, config.schema);
    await addSpellingAliases(identities, resolved, registry, config.targets.map((t) => t.format));
    assertKeysMatch(identities, registry);
    const register = options.register ?? 'none';
    // A registered fingerprint is permanent: a secret that is not a valid key
    // (say, not base64) must be refused before it is registered, or the right
    // secret would then be refused as "does not match the registered key".
    if (register !== 'none') assertKeysFitTargetFormats(resolved, registry, config);
    const checked = (
      options.checkBeforeWriting ? await options.checkBeforeWriting(pool, config, { configured: identities, registry }) : undefined
    ) as Checked;
    checkStop();
    if (register !== 'none') {
      if (register !== 'all') {
        const unknown = register.filter((id) => !identities.some((k) => k.id === id));
        if (unknown.length > 0) {
          throw new UsageError(`key ${unknown[0]} is not in the config file — add it to "keys" first`);
        }
      }
      assertTargetsToCheckKeysAgainst(config, registry, register === 'all' ? identities.map((k) => k.id) : register);
      // Re-checks the fingerprints under the registry lock, so a concurrent
      // registration with another secret is caught too.
      ({ registry } = await registerConfiguredKeys(pool, config.schema, identities, actor, register === 'all' ? undefined : register));
    }
    checkStop();
    const keyrings = new Map<string, Promise<Keyring>>();
    /** Configured, not retired keys, primary first: `primary` if given, else the registry's, else config order. */
    const orderedKeys = (wantedPrimary: string | undefined): ResolvedKey[] => {
      const usable = resolved.filter((k) => registry.find((r) => r.keyId === k.id)?.state !== 'retired');
      const primary = wantedPrimary ?? registry.find((r) => r.isPrimary && usable.some((k) => k.id === r.keyId))?.keyId;
      const ordered = primary ? [...usable.filter((k) => k.id === primary), ...usable.filter((k) => k.id !== primary)] : usable;
      if (wantedPrimary && ordered[0]?.id !== wantedPrimary) {
        throw new UsageError(`key ${wantedPrimary} is not configured or is retired`);
      }
      return ordered;
    };
    const session: Session = {
      config,
      pool,
      schema: config.schema,
      actor,
      get registry() {
        return registry;
      },
      get keys() {
        return identities.map(({ aliases: _aliases, ...k }) => ({ ...k, registered: registry.find((r) => r.keyId === k.id) ?? null }));
      },
      keyring(format, keyringOptions = {}) {
        const ordered = orderedKeys(keyringOptions.primary);
        const cacheKey = `${format}\0${ordered.map((k) => k.id).join('\0')}`;
        let keyring = keyrings.get(cacheKey);
        if (!keyring) {
          // Derive keys off the main thread first (django formats run PBKDF2),
          // then build the keyring synchronously from the warmed memo.
          const handler = getFormatHandler(format);
          keyring = Promise.all(ordered.map((k) => handler.prewarmKey(k.id, k.secret))).then(() =>
            keyringFromResolved(format, ordered),
          );
          keyrings.set(cacheKey, keyring);
        }
        return keyring;
      },
      async keyringSecrets(format, keyringOptions = {}) {
        // Building the keyring first validates every secret for the format.
        await session.keyring(format, keyringOptions);
        return orderedKeys(keyringOptions.primary);
      },
      async refreshRegistry() {
        registry = await listRegisteredKeys(pool, config.schema);
        return registry;
      },
      endStartUp() {
        canceller?.detach();
      },
    };
    return await fn(session, checked);
  } catch (err) {
    throw asDatabaseError(err);
  } finally {
    canceller?.detach();
    stopWatch?.detach();
    await pool.end();
  }
}
