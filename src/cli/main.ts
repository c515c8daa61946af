import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { createContext, type CommandContext, type GlobalOptions } from './context.js';
import { ExitCode, exitCodeFor, type ExitCodeValue } from './exitCodes.js';
import { createOutput } from './output.js';
import { givenOnce } from './givenOnce.js';
import { describeUnknownArguments } from './unknownOptions.js';
import { registerCommands } from './commands/index.js';
import { PgRekeyError } from '../errors.js';

const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;

/** A command's body: gets the invocation's context, returns the exit code. */
export type CommandHandler<A> = (ctx: CommandContext, argv: A) => Promise<ExitCodeValue>;

/** Runs the CLI on `argv` and resolves to the process exit code; never calls process.exit. */
export async function runCli(argv: string[]): Promise<ExitCodeValue> {
  let exitCode: ExitCodeValue = ExitCode.OK;
  // How errors are printed: from the parsed options once yargs has them, else (a usage error) from argv.
  let json = jsonRequested(argv);
  const parser: Argv = yargs(argv)
    .scriptName('pg-rekey')
    .usage('$0 <command> [options]\n\nRotate the keys of application-encrypted PostgreSQL columns, online and resumable.')
    .option('config', {
      type: 'string',
      default: './pg-rekey.config.json',
      describe: 'Config file: keys, targets, schema (see README "Config")',
      global: true,
      coerce: givenOnce('config'),
    })
    .option('database-url', {
      type: 'string',
      describe:
        'PostgreSQL connection URL (default: env DATABASE_URL). libpq parameters pg-rekey reads: connect_timeout, keepalives, ' +
        'keepalives_idle, sslmode (require checks the certificate as verify-full), sslrootcert. migrate needs one server session: ' +
        'not a transaction-mode pooler',
      global: true,
      coerce: givenOnce('database-url'),
    })
    .option('json', { type: 'boolean', default: false, describe: 'Print results as JSON', global: true })
    .option('log-level', {
      type: 'string',
      choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
      default: 'info',
      describe: 'Log level of the JSON log lines on stderr',
      global: true,
      coerce: givenOnce('log-level'),
    })
    .version(version)
    .alias('help', 'h')
    .strict()
    .demandCommand(1, 'Name a command; see pg-rekey --help')
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .epilogue(
      // One code per line: yargs re-wraps long lines at the terminal width, mid-list.
      [
        'Exit codes:',
        '   0  ok',
        '   1  finished, but found failures (undecryptable values, a key in use, a broken audit chain…)',
        '   2  bad usage, config or key: nothing was written',
        '   3  schema missing or incompatible: run pg-rekey migrate up',
        '   4  conflicts with another unfinished run',
        '  69  database unreachable, or it refused us',
        '  70  internal error (a bug in pg-rekey)',
        '  75  stopped early at a clean boundary, or rows were still being rewritten: run again to continue',
      ].join('\n'),
    )
    .exitProcess(false)
    .fail((message, error, usage) => {
      // yargs reports usage mistakes here; errors thrown by handlers are rethrown.
      // A YError is yargs' own usage error (an option's coerce threw, e.g. a bad
      // number): it carries the message, and must exit 2 like any usage mistake.
      if (error && error.name !== 'YError') throw error;
      throw new UsageUnderYargs(describeUnknownArguments(message ?? error?.message ?? 'bad usage', argv, knownOptions(usage)));
    });

  registerCommands(parser, (handler) => async (args: GlobalOptions) => {
    json = Boolean(args.json);
    exitCode = await handler(createContext(args), args as never);
  });

  try {
    await parser.parseAsync();
  } catch (error) {
    const output = createOutput({ json });
    if (error instanceof UsageUnderYargs) {
      output.error('USAGE', `${error.message}\nRun "pg-rekey --help" for usage.`);
      return ExitCode.USAGE_OR_CONFIG;
    }
    if (error instanceof PgRekeyError) {
      output.error(error.code, error.message);
    } else {
      // An unexpected error may carry a driver message; print only its class and
      // message (never a query's parameters, which pg-rekey never sends secrets in anyway).
      output.error('INTERNAL', `internal error: ${(error as Error)?.message ?? String(error)}`);
    }
    return exitCodeFor(error);
  }
  return exitCode;
}

/**
 * Whether argv asks for --json, before yargs has parsed it: every spelling
 * yargs accepts for the boolean (`--json`, `--json=true`, `--no-json`,
 * `--json=false`), the last one winning as in yargs — so an error is printed
 * as JSON exactly when the result would have been.
 */
function jsonRequested(argv: readonly string[]): boolean {
  let json = false;
  for (const arg of argv) {
    if (arg === '--') break;
    if (arg === '--json' || arg === '--json=true') json = true;
    else if (arg === '--no-json' || arg === '--json=false') json = false;
  }
  return json;
}

/**
 * The options of the command that failed to parse. yargs hands .fail() its
 * usage object (typed as Argv), whose descriptions are keyed by option name;
 * should that change, there is simply no suggestion.
 */
function knownOptions(usage: unknown): string[] {
  const describe = (usage as { getDescriptions?: () => Record<string, unknown> } | undefined)?.getDescriptions;
  return typeof describe === 'function' ? Object.keys(describe.call(usage)) : [];
}

/** A usage mistake found by yargs (unknown option, missing argument). */
class UsageUnderYargs extends Error {}
