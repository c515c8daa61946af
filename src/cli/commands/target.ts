import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { FORMAT_IDS, type FormatId } from '../../config/configSchema.js';
import { assertRelationExists, findPartitions, selectPublicationsSql } from '../../db/catalog.js';
import { formatQualifiedName, parseQualifiedName } from '../../db/quote.js';
import { UsageError } from '../../errors.js';
import { planConfigChange } from '../../schema/addTargetToConfig.js';
import { resolveTarget } from '../../schema/resolveTarget.js';
import { parseTargetMarker, renderTargetMigration } from '../../schema/targetMigration.js';
import { ExitCode } from '../exitCodes.js';
import { withSession } from '../session.js';
import type { Wrap } from './index.js';

interface TargetAddArgs {
  table: string;
  columns: string;
  key: string | undefined;
  format: FormatId | undefined;
  dryRun: boolean;
}

const list = (text: string) =>
  text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

/** Existing migration files in `dir`: columns covered per table, and the latest timestamp prefix. */
async function scanMigrations(dir: string, schema: string, table: string) {
  let files: string[] = [];
  try {
    files = (await readdir(dir)).filter((f) => !f.startsWith('.')).sort();
  } catch {
    // No directory yet: nothing covered.
  }
  const covered = new Map<string, string>();
  let lastTimestamp = 0;
  for (const file of files) {
    const stamp = Number(/^(\d+)_/.exec(file)?.[1] ?? 0);
    lastTimestamp = Math.max(lastTimestamp, stamp);
    if (!file.endsWith('.mjs')) continue;
    const marker = parseTargetMarker(await readFile(path.join(dir, file), 'utf8'));
    if (marker && marker.schema === schema && marker.table === table) {
      for (const c of marker.columns) covered.set(c, file);
    }
  }
  return { covered, lastTimestamp };
}

/** `pg-rekey target add`: validate a table, write its migration, add it to the config. */
export function targetCommand(wrap: Wrap): CommandModule {
  return {
    command: 'target',
    describe: 'Add tables whose columns pg-rekey rotates',
    builder: (yargs: Argv) =>
      yargs
        .command({
          command: 'add',
          describe:
            'Check a table, write the migration that adds its key-version columns (apply with "migrate up"), add it to the config',
          builder: (y: Argv) =>
            y
              .option('table', { type: 'string', demandOption: true, describe: 'The table, [schema.]table' })
              .option('columns', { type: 'string', demandOption: true, describe: 'Encrypted text columns, comma-separated' })
              .option('key', {
                type: 'string',
                describe: 'Unique NOT NULL key columns, comma-separated (default: the primary key)',
              })
              .option('format', {
                type: 'string',
                choices: FORMAT_IDS,
                describe: 'Stored format of the columns (required unless the table is already configured)',
              })
              .option('dry-run', { type: 'boolean', default: false, describe: 'Print the migration and config change; write nothing' }),
          handler: wrap<TargetAddArgs>(async (ctx, argv) => {
            const config = await ctx.config();
            const { schema, name: table } = parseQualifiedName(argv.table);
            const columns = list(argv.columns);
            const key = argv.key !== undefined ? list(argv.key) : undefined;
            if (columns.length === 0) throw new UsageError('--columns needs at least one column name');
            // The config refuses a target that lists a column twice: written as given, it would stop every later command.
            const twice = columns.find((c, i) => columns.indexOf(c) !== i);
            if (twice !== undefined) throw new UsageError(`--columns names ${twice} twice — name each column once`);
            const configured = config.targets.find((t) => t.schema === schema && t.table === table);
            const format = argv.format ?? configured?.format;
            if (format === undefined) throw new UsageError('--format is required for a table that is not configured yet');
            // Checks the table against pg_catalog: exit 2 for a missing table, no usable key, a non-text column.
            const { resolved, partitions, publications } = await withSession(ctx, { keys: false }, async (session) => {
              const resolved = await resolveTarget(session.pool, { schema, table, key, columns, format }, { requireVersionColumns: false, registrySchema: config.schema });
              // A partitioned table's migration indexes each partition (exit 2 where that cannot work).
              const info = await assertRelationExists(session.pool, { schema, name: table });
              const partitions = info.kind === 'partitioned table' ? await findPartitions(session.pool, info) : undefined;
              const publications = (await session.pool.query<{ pubname: string }>(selectPublicationsSql({ schema, name: table }))).rows.map((r) => r.pubname);
              return { resolved, partitions, publications };
            });
            const { covered, lastTimestamp } = await scanMigrations(config.migrationsDir, schema, table);
            const toMigrate = columns.filter((c) => !covered.has(c));
            // A later file name than every existing one: node-pg-migrate refuses
            // to apply a migration that sorts before one already applied.
            const stamp = new Date(Math.max(Date.now(), lastTimestamp + 1));
            const migration =
              toMigrate.length > 0
                ? renderTargetMigration({ schema, table, columns: toMigrate, registrySchema: config.schema, ...(partitions ? { partitions } : {}) }, stamp)
                : null;
            const migrationPath = migration ? path.join(config.migrationsDir, migration.fileName) : null;
            const change = planConfigChange(await readFile(config.configPath, 'utf8'), config.configPath, {
              schema,
              table,
              key,
              columns,
              format,
            });
            if (!argv.dryRun) {
              if (migration && migrationPath) {
                await mkdir(config.migrationsDir, { recursive: true });
                await writeFile(migrationPath, migration.source, { flag: 'wx' });
              }
              if (change.action !== 'unchanged') await writeFile(config.configPath, change.text);
            }
            const name = formatQualifiedName({ schema, name: table });
            ctx.output.result(
              {
                dryRun: argv.dryRun,
                target: { name, key: resolved.key, columns: resolved.columns.map((c) => c.name), format },
                migration: migration ? { path: migrationPath, source: migration.source, up: migration.up, down: migration.down } : null,
                alreadyMigrated: Object.fromEntries(covered),
                publications,
                config: { path: config.configPath, action: change.action, entry: change.entry, text: argv.dryRun ? change.text : undefined },
              },
              () => {
                const lines: string[] = [];
                const verb = argv.dryRun ? 'Would write' : 'Wrote';
                lines.push(`${name}: key (${resolved.key.map((k) => `${k.name} ${k.type}`).join(', ')}), columns ${columns.join(', ')}, format ${format}.`);
                if (migration) {
                  lines.push(`${verb} migration ${migrationPath}`);
                  if (argv.dryRun) lines.push('', migration.source);
                } else {
                  lines.push(`Columns already covered by ${[...new Set(covered.values())].join(', ')}; no migration written.`);
                }
                if (change.action === 'unchanged') lines.push(`${config.configPath}: the target is already there.`);
                else {
                  const what = change.action === 'added' ? 'add target' : `add columns ${change.newColumns.join(', ')} to`;
                  lines.push(`${argv.dryRun ? 'Would' : 'Did'} ${what} ${change.entry.table} in ${config.configPath}:`);
                  lines.push(JSON.stringify(change.entry, null, 2));
                }
                if (migration && publications.length > 0) {
                  // A subscriber missing a published column stops applying changes for the whole subscription.
                  lines.push(
                    '',
                    `Note: ${name} is published (${publications.join(', ')}). Logical replication stops at the first change to it ` +
                      "unless each subscriber's copy already has the new key-version columns (or the publication's column list leaves them out): " +
                      'add them on the subscribers before "pg-rekey migrate up" here.',
                  );
                }
                if (!argv.dryRun && migration) lines.push('', 'Next: review the migration, then run "pg-rekey migrate up".');
                return lines.join('\n');
              },
            );
            return ExitCode.OK;
          }),
        })
        .demandCommand(1, 'Name a target command: add'),
    handler: () => undefined,
  };
}

