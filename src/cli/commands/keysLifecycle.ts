import type { Argv } from 'yargs';
import { UsageError } from '../../errors.js';
import { keyInventory, type KeyInventory } from '../../schema/keyInventory.js';
import { promoteKey, registerConfiguredKeys, retireKey } from '../../schema/registry.js';
import { describeClosedGate } from '../../schema/retireGate.js';
import type { CommandContext } from '../context.js';
import { ExitCode } from '../exitCodes.js';
import { givenOnce } from '../givenOnce.js';
import { formatTable } from '../output.js';
import { assertTargetsToCheckKeysAgainst, withSession, type Session } from '../session.js';
import type { Wrap } from './index.js';

/**
 * Loads the keyring of every configured target format, so a key that does not
 * fit a format (wrong length, bad encoding) is refused (exit 2) before it is
 * registered or promoted.
 */
async function assertKeysFitFormats(session: Session): Promise<void> {
  for (const format of new Set(session.config.targets.map((t) => t.format))) await session.keyring(format);
}

function renderInventory(inv: KeyInventory): string {
  const headers = ['VERSION', 'ID', 'FINGERPRINT', 'STATE', 'PRIMARY', 'AGE (DAYS)', ...inv.columns];
  const rows = inv.keys.map((k) => [
    k.version ?? '-',
    k.id,
    k.fingerprint,
    k.state,
    k.primary ? 'yes' : '',
    k.ageDays ?? '-',
    ...inv.columns.map((c) => k.rows[c] ?? 0),
  ]);
  if (inv.columns.length > 0) rows.push(['', '(unknown)', '', '', '', '', ...inv.columns.map((c) => inv.unknown[c] ?? 0)]);
  const lines = [formatTable(headers, rows), ''];
  for (const u of inv.uncounted) lines.push(`${u.target}: rows not counted — ${u.reason}`);
  const d = inv.due;
  if (d.primary === null) lines.push('No primary key registered: run "pg-rekey keys promote <id>" (or a rotation) first.');
  else if (d.overdue) {
    lines.push(`Rotation OVERDUE: primary ${d.primary} was due ${d.dueAt!.toISOString().slice(0, 10)} (every ${d.intervalDays} days).`);
  } else {
    lines.push(`Next rotation due ${d.dueAt!.toISOString().slice(0, 10)} (in ${d.daysLeft} days; every ${d.intervalDays} days).`);
  }
  return lines.join('\n');
}

async function listKeys(ctx: CommandContext, checkDue: boolean) {
  return withSession(ctx, {}, async (session) => {
    const inv = await keyInventory(session.pool, {
      schema: session.schema,
      configured: session.keys,
      targets: session.config.targets,
      rotationIntervalDays: session.config.rotationIntervalDays,
    });
    ctx.output.result(inv, () => renderInventory(inv));
    return checkDue && inv.due.overdue ? ExitCode.FAILURES : ExitCode.OK;
  });
}

/** Adds `keys add | list | promote | retire` (the registry lifecycle, issue 3 §4) to the `keys` command. */
export function addKeyLifecycleCommands(yargs: Argv, wrap: Wrap): Argv {
  // Once: a repeated --reason would be recorded as "{a,b}" in the append-only audit trail.
  const reason = { type: 'string' as const, coerce: givenOnce('reason'), describe: 'Why, recorded in the audit trail (runs)' };
  return yargs
    .command({
      command: 'add <id>',
      describe: 'Register a configured key ahead of time (fingerprint only), decrypt-only',
      builder: (y: Argv) => y.positional('id', { type: 'string', demandOption: true }),
      handler: wrap<{ id: string }>(async (ctx, argv) =>
        withSession(ctx, {}, async (session) => {
          const configured = session.keys.find((k) => k.id === argv.id);
          if (!configured) {
            throw new UsageError(`key ${argv.id} is not in the config file — add it to "keys" first`);
          }
          assertTargetsToCheckKeysAgainst(session.config, session.registry, [argv.id]);
          await assertKeysFitFormats(session);
          const { registry, added } = await registerConfiguredKeys(session.pool, session.schema, session.keys, session.actor, [argv.id]);
          const key = registry.find((r) => r.keyId === argv.id)!;
          const result = { key: key.keyId, version: key.version, fingerprint: key.fingerprint, primary: key.isPrimary, added: added.includes(key.keyId) };
          ctx.output.result(result, () =>
            result.added
              ? `Registered key ${key.keyId} as version ${key.version} (fingerprint ${key.fingerprint})${key.isPrimary ? ', primary: it is the first key' : ', decrypt-only'}.`
              : `Key ${key.keyId} is already registered (version ${key.version}, ${key.state}).`,
          );
          return ExitCode.OK;
        }),
      ),
    })
    .command({
      command: 'list',
      describe: 'Registered keys: version, fingerprint, state, primary, age, rows per target column; when rotation is due',
      builder: (y: Argv) =>
        y.option('check-due', { type: 'boolean', default: false, describe: 'Exit 1 when the primary key is older than rotationIntervalDays' }),
      handler: wrap<{ checkDue: boolean }>(async (ctx, argv) => listKeys(ctx, argv.checkDue)),
    })
    .command({
      command: 'promote <id>',
      describe: 'Make a key primary (it encrypts); the previous primary stays decrypt-only',
      builder: (y: Argv) => y.positional('id', { type: 'string', demandOption: true }).option('reason', reason),
      handler: wrap<{ id: string; reason: string | undefined }>(async (ctx, argv) =>
        // Promoting a configured key that was never used registers it first (its first use).
        withSession(ctx, { register: [argv.id] }, async (session) => {
          await assertKeysFitFormats(session);
          const result = await promoteKey(session.pool, session.schema, argv.id, session.actor, argv.reason);
          ctx.output.result(result, () =>
            result.alreadyPrimary
              ? `Key ${argv.id} already is the primary key.`
              : `Key ${argv.id} is now the primary key${result.previousPrimary ? `; ${result.previousPrimary} stays decrypt-only` : ''}.`,
          );
          return ExitCode.OK;
        }),
      ),
    })
    .command({
      command: 'retire <id>',
      describe:
        'Retire a key no row needs any more; refused (exit 1) while any row references it or has an unknown key version, ' +
        // retireGate voids a rehearsal on a rotation, a promotion and a verify --fix-versions repair alike.
        'or until "pg-rekey verify --without <id>" passed after the last rotation, promotion or hint repair',
      builder: (y: Argv) => y.positional('id', { type: 'string', demandOption: true }).option('reason', reason),
      handler: wrap<{ id: string; reason: string | undefined }>(async (ctx, argv) =>
        withSession(ctx, {}, async (session) => {
          const outcome = await retireKey(session.pool, session.schema, argv.id, session.config.targets, session.actor, argv.reason);
          if (outcome.retired) {
            ctx.output.result(
              outcome,
              () => `Key ${argv.id} is retired (rehearsal: verify run ${outcome.gate.verifyRunId}); no command will use it again.`,
            );
            return ExitCode.OK;
          }
          ctx.output.result(outcome, () => {
            const lines = [`Refused: key ${argv.id} may still be needed.`];
            for (const u of outcome.referencing) lines.push(`  ${u.target}.${u.column}: ${u.byKey[argv.id]} row(s) encrypted with ${argv.id}`);
            for (const u of outcome.unknown) lines.push(`  ${u.target}.${u.column}: ${u.unknown} row(s) of unknown key version`);
            if (outcome.referencing.length > 0 || outcome.unknown.length > 0) {
              lines.push('Rotate them first ("pg-rekey rotate"), then run "pg-rekey verify --without ' + argv.id + '" and retire again.');
            } else if (!outcome.gate.satisfied) {
              lines.push(`  ${describeClosedGate(outcome.gate)}`);
            }
            return lines.join('\n');
          });
          return ExitCode.FAILURES;
        }),
      ),
    });
}
