/**
 * Usage mistakes caught by the argument parser: exit 2 with a message that
 * says what to do, and never a secret from the command line. No database is
 * needed: yargs refuses these before any connection.
 */
import { describe, expect, it } from 'vitest';
import { ExitCode } from '../../src/cli/exitCodes.js';
import { runCli } from '../helpers/cli.js';

describe('usage messages', () => {
  it('a database URL given as a positional is refused without printing its password', async () => {
    for (const json of [[], ['--json']]) {
      const r = await runCli(['status', 'postgres://user:Pa55w0rdSecret@db.example/app', ...json]);
      expect(r.code, r.stderr.replace(/Pa55w0rdSecret/g, '<password>')).toBe(2);
      // Booleans, so a failure cannot print the password either.
      expect(/Unknown argument: postgres:\/\/user:\*\*\*@db\.example\/app/.test(r.stderr), 'names the masked argument').toBe(true);
      expect(r.stderr.includes('Pa55w0rdSecret'), 'the password was printed').toBe(false);
      expect(r.stdout.includes('Pa55w0rdSecret'), 'the password was printed').toBe(false);
    }
  });

  it('a mistyped option exits 2 naming it once, with the option the command accepts', async () => {
    const cases: [string[], RegExp][] = [
      [['rotate', '--batchsize', '500'], /^pg-rekey: Unknown argument: batchsize\n--batchsize: did you mean --batch-size\?$/m],
      [['verify', '--sampel', '10'], /--sampel: did you mean --sample\?/],
      [['keys', 'list', '--checkdue'], /--checkdue: did you mean --check-due\?/],
      [['status', '--wach'], /--wach: did you mean --watch\?/],
    ];
    for (const [args, message] of cases) {
      const r = await runCli(args);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    // A kebab-case typo is named as typed, not also as its camelCase alias.
    const kebab = await runCli(['rotate', '--batch-sise', '5', '--json']);
    expect(kebab.code).toBe(2);
    expect(JSON.parse(kebab.stderr).error.message).toMatch(/^Unknown argument: batch-sise\n--batch-sise: did you mean --batch-size\?/);
    // Nothing close: no guess.
    const far = await runCli(['status', '--frobnicate']);
    expect(far.code).toBe(2);
    expect(far.stderr).toMatch(/Unknown argument: frobnicate/);
    expect(far.stderr).not.toMatch(/did you mean/);
  });

  it('--json=true prints errors as JSON too, like --json', async () => {
    // A usage error (yargs has not parsed the options) and a handler's error (it has).
    const usage = await runCli(['status', '--json=true', '--frobnicate']);
    expect(usage.code).toBe(2);
    expect(JSON.parse(usage.stderr).error.code).toBe('USAGE');
    const unreachable = await runCli(['keys', 'list', '--json=true', '--config', 'nope.json']);
    expect(unreachable.code).toBe(2);
    expect(JSON.parse(unreachable.stderr).error.code).toBe('CONFIG_INVALID');
    // And --no-json after --json means human text.
    const human = await runCli(['status', '--json', '--no-json', '--frobnicate']);
    expect(human.code).toBe(2);
    expect(human.stderr).toMatch(/^pg-rekey: Unknown argument: frobnicate/);
  });

  it('a command group without its subcommand names the subcommands', async () => {
    const expected: Record<string, RegExp> = {
      keys: /Name a keys command; see pg-rekey keys --help/,
      target: /Name a target command: add/,
      migrate: /Name a migrate command: up, down or status/,
    };
    for (const [group, message] of Object.entries(expected)) {
      const r = await runCli([group]);
      expect(r.code, `${group}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/Not enough non-option arguments/);
    }
  });

  it('migrate --help names the schema as it is called (pgrekey; pg_ names are reserved)', async () => {
    const r = await runCli(['migrate', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('pg_rekey');
    expect(r.stdout).toContain('pgrekey by default');
  });

  it('a global option given twice is refused, not an internal error', async () => {
    const r = await runCli(['status', '--database-url', 'postgres://a@h1/db', '--database-url', 'postgres://a@h2/db']);
    expect(r.code, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/--database-url is given more than once/);
    const c = await runCli(['keys', 'check', '--config', 'a.json', '--config', 'b.json']);
    expect(c.code, c.stderr).toBe(2);
    expect(c.stderr).toMatch(/--config is given more than once/);
  });

  it('--help lists every exit code, one per line, as deploy hooks branch on them', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    const listed = [...r.stdout.matchAll(/^ {1,3}(\d{1,2})  \S/gm)].map((m) => Number(m[1]));
    expect(listed).toEqual(Object.values(ExitCode).sort((a, b) => a - b));
  });
});
