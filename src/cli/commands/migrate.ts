import type { Argv, CommandModule } from 'yargs';
import { sessionTimeoutOf } from '../../db/sessionTimeout.js';
import { serverHintOf, sqlstateOf } from '../../db/sqlstate.js';
import { DatabaseError, PgRekeyError } from '../../errors.js';
import { migrate, type MigrateResult } from '../../schema/migrate.js';
import { migrationStatus, type MigrationState } from '../../schema/migrationStatus.js';
import type { CommandContext } from '../context.js';
import { ExitCode } from '../exitCodes.js';
import { formatTable } from '../output.js';
import { wholeNumberOption } from '../numberOptions.js';
import { asDatabaseError } from '../session.js';
import type { Wrap } from './index.js';

/** node-pg-migrate wraps failures in plain Errors; give them a code and keep the SQLSTATE. */
function asMigrationError(err: unknown): unknown {
  // A timeout here is often the migration's own lock_timeout (target migrations
  // set one), not a setting of the role: keep the migration's wording and advice.
  const typed = sessionTimeoutOf(err) ? err : asDatabaseError(err);
  if (typed instanceof PgRekeyError) return typed;
  const code = sqlstateOf(err);
  if (code !== undefined || /migration/i.test((err as Error)?.message ?? '')) {
    // The server's hint says what to do where the migration knows better than the general advice.
    const advice = serverHintOf(err) ?? 'fix the cause and run "pg-rekey migrate up" again; completed steps are not repeated';
    return new DatabaseError(`migration failed: ${(err as Error).message}${code ? ` (SQLSTATE ${code})` : ''} — ${advice}`, { cause: err });
  }
  return err;
}

async function runMigrate(
  ctx: CommandContext,
  direction: 'up' | 'down',
  options: { dryRun: boolean; count?: number },
): Promise<MigrateResult> {
  const config = await ctx.config();
  try {
    return await migrate({
      databaseUrl: ctx.databaseUrl(),
      schema: config.schema,
      targetMigrationsDir: config.migrationsDir,
      direction,
      dryRun: options.dryRun,
      ...(options.count !== undefined ? { count: options.count } : {}),
      logger: ctx.logger,
    });
  } catch (err) {
    throw asMigrationError(err);
  }
}

function describeResult(result: MigrateResult, direction: 'up' | 'down', dryRun: boolean, requested = 1): string {
  if (dryRun) {
    const sql = result.sql.length > 0 ? result.sql.join('\n\n') : '-- nothing to do';
    return `-- pg-rekey migrate ${direction} --dry-run: nothing was written\n${sql}`;
  }
  const done = [...result.own, ...result.target];
  if (done.length === 0) return direction === 'up' ? 'Nothing to do: the schema is current.' : 'Nothing to undo.';
  const verb = direction === 'up' ? 'Applied' : 'Undid';
  const lines = [`${verb} ${done.length} migration(s):`, ...done.map((n) => `  ${n}`)];
  // down works one stage at a time: say so when it stopped short of the count.
  if (direction === 'down' && result.target.length > 0 && result.target.length < requested) {
    lines.push('Every target migration is undone; pg-rekey\'s own schema is next: run "pg-rekey migrate down" again to undo it.');
  }
  return lines.join('\n');
}

function stateRows(kind: string, states: readonly MigrationState[]): string[][] {
  return states.map((m) => [
    kind,
    m.name,
    m.missingFile ? 'applied (file missing)' : m.applied ? 'applied' : 'pending',
    m.appliedAt ? m.appliedAt.toISOString() : '',
  ]);
}

/** `pg-rekey migrate up | down | status`: pg-rekey's schema, then the target migrations. */
export function migrateCommand(wrap: Wrap): CommandModule {
  const dryRun = {
    type: 'boolean' as const,
    default: false,
    describe: 'Print the SQL that would run; write nothing',
  };
  return {
    command: 'migrate',
    describe: "Apply, undo or list pg-rekey's schema migrations and the target migrations",
    builder: (yargs: Argv) =>
      yargs
        .command({
          command: 'up',
          describe:
            'Apply pending migrations: pg-rekey\'s own schema ("schema" in the config, pgrekey by default) first, then those in migrationsDir. Safe to run from several hosts at once',
          builder: (y: Argv) => y.option('dry-run', dryRun),
          handler: wrap<{ dryRun: boolean }>(async (ctx, argv) => {
            const result = await runMigrate(ctx, 'up', { dryRun: argv.dryRun });
            ctx.output.result({ direction: 'up', dryRun: argv.dryRun, ...result }, () =>
              describeResult(result, 'up', argv.dryRun),
            );
            return ExitCode.OK;
          }),
        })
        .command({
          command: 'down',
          describe: 'Undo the last migration (target migrations first, then pg-rekey\'s own schema)',
          builder: (y: Argv) =>
            y
              .option('dry-run', dryRun)
              .option('count', wholeNumberOption('count', { min: 1, default: 1, describe: 'How many migrations to undo (at least 1)' }))
              .option('all', { type: 'boolean', default: false, describe: 'Undo every migration of the stage reached' }),
          handler: wrap<{ dryRun: boolean; count: number; all: boolean }>(async (ctx, argv) => {
            const count = argv.all ? Number.POSITIVE_INFINITY : argv.count;
            const result = await runMigrate(ctx, 'down', { dryRun: argv.dryRun, count });
            ctx.output.result({ direction: 'down', dryRun: argv.dryRun, ...result }, () =>
              describeResult(result, 'down', argv.dryRun, count),
            );
            return ExitCode.OK;
          }),
        })
        .command({
          command: 'status',
          describe: 'List which migrations are applied and which are pending',
          handler: wrap(async (ctx) => {
            const config = await ctx.config();
            let status;
            try {
              status = await migrationStatus({
                databaseUrl: ctx.databaseUrl(),
                schema: config.schema,
                targetMigrationsDir: config.migrationsDir,
              });
            } catch (err) {
              throw asMigrationError(err);
            }
            const pending = [...status.own, ...status.target].filter((m) => !m.applied).length;
            ctx.output.result({ ...status, pending }, () => {
              const rows = [...stateRows('pg-rekey', status.own), ...stateRows('target', status.target)];
              const advice = pending > 0 ? `${pending} pending — run "pg-rekey migrate up".` : 'Everything is applied.';
              return `${formatTable(['KIND', 'MIGRATION', 'STATE', 'APPLIED AT'], rows)}\n\n${advice}`;
            });
            return ExitCode.OK;
          }),
        })
        .demandCommand(1, 'Name a migrate command: up, down or status'),
    handler: () => undefined,
  };
}
