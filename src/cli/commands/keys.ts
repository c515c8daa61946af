import type { Argv, CommandModule } from 'yargs';
import { FORMAT_IDS, type FormatId } from '../../config/configSchema.js';
import { generateKey } from '../../crypto/generateKey.js';
import { checkKeys } from '../../crypto/checkKeys.js';
import { ExitCode } from '../exitCodes.js';
import { givenOnce } from '../givenOnce.js';
import { formatTable } from '../output.js';
import type { Wrap } from './index.js';
import { addKeyLifecycleCommands } from './keysLifecycle.js';

/** `pg-rekey keys …`: generate, check (and the registry lifecycle commands). */
export function keysCommand(wrap: Wrap): CommandModule {
  return {
    command: 'keys',
    describe: 'Generate, check and manage encryption keys',
    builder: (yargs: Argv) =>
      addKeyLifecycleCommands(yargs, wrap)
        .command({
          command: 'generate',
          describe: 'Print a new random key for a format to stdout, nothing else',
          builder: (y: Argv) =>
            y.option('format', {
              type: 'string',
              choices: FORMAT_IDS,
              demandOption: true,
              coerce: givenOnce('format'),
              describe:
                'fernet: a Fernet key · django-fernet-v1/v2: a Django SECRET_KEY (50 chars) · aes-256-gcm: 32 bytes base64',
            }),
          handler: wrap<{ format: FormatId }>(async (ctx, argv) => {
            // Only the key, so `pg-rekey keys generate … | vault kv put …` works; never logged.
            // With --json, a document like every command's, for scripts that parse them all alike.
            const key = generateKey(argv.format);
            ctx.output.result({ format: argv.format, key }, () => key);
            return ExitCode.OK;
          }),
        })
        .command({
          command: 'check',
          describe:
            "Load every configured key, round-trip a test value in each target's format, print id, fingerprint and role",
          handler: wrap(async (ctx) => {
            const config = await ctx.config();
            const report = await checkKeys(config, { env: ctx.env });
            ctx.output.result(report, () => {
              const verdict =
                report.formats.length > 0
                  ? `round-trip ok in ${report.formats.join(', ')}`
                  : 'no targets configured, so no format was round-tripped (add one with "pg-rekey target add")';
              return `${formatTable(
                ['ID', 'FINGERPRINT', 'ROLE'],
                report.keys.map((k) => [k.id, k.fingerprint, k.role]),
              )}\n\n${report.keys.length} key(s) loaded; ${verdict}.`;
            });
            return ExitCode.OK;
          }),
        })
        .demandCommand(1, 'Name a keys command; see pg-rekey keys --help'),
    handler: () => undefined,
  };
}
