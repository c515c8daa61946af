/**
 * Usage mistakes caught by the argument parser: exit 2 with a message that
 * says what to do, and never a secret from the command line. No database is
 * needed: yargs refuses these before any connection.
 */
import { describe, expect, it } from 'vitest';
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
});
