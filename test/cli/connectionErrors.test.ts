/**
 * A database URL that cannot work: the CLI exits 69 (database unavailable)
 * when the server cannot be reached or refuses the connection as configured,
 * 2 when the URL itself cannot be parsed — with a message that says what to
 * fix, never 70, and never the password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { runCli } from '../helpers/cli.js';
import { createProject, type TestProject } from './project.js';

const db = useTestDatabase('connerrors');
let project: TestProject;

beforeAll(async () => {
  project = await createProject(db.current.url);
});
afterAll(() => project?.remove());

/** The test database's URL with `change` applied. */
function urlWith(change: (u: URL) => void): string {
  const u = new URL(db.current.url);
  change(u);
  return u.toString();
}

/** Runs the CLI in the project with `url` as DATABASE_URL. */
const cliWithUrl = (args: string[], url: string) =>
  runCli([...args, '--config', project.configPath], { cwd: project.dir, env: { ...project.env, DATABASE_URL: url } });

const password = () => new URL(db.current.url).password;

describe('connection failures', () => {
  const commands = [['keys', 'list'], ['migrate', 'status']];

  async function expectFailure(url: string, code: number, message: RegExp) {
    for (const args of commands) {
      for (const json of [[], ['--json']]) {
        const r = await cliWithUrl([...args, ...json], url);
        expect(r.code, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`).toBe(code);
        expect(r.stderr, args.join(' ')).toMatch(message);
        if (password()) expect(r.stderr.includes(password()), 'the password was printed').toBe(false);
      }
    }
  }

  it('a URL without the password the server asks for exits 69 saying to add it', async () => {
    expect(password(), 'the test server must require a password').not.toBe('');
    await expectFailure(urlWith((u) => (u.password = '')), 69, /needs a password/);
  });

  it('sslmode=require against a server without SSL exits 69', async () => {
    await expectFailure(urlWith((u) => u.searchParams.set('sslmode', 'require')), 69, /does not support SSL/);
  });

  it('a Unix socket directory that does not exist exits 69', async () => {
    await expectFailure(`postgres://someone@${encodeURIComponent('/nonexistent-pg-rekey-socket-dir')}/db`, 69, /database unavailable/);
  });

  it('a URL that cannot be parsed exits 2 saying to fix it, without echoing it', async () => {
    const url = `postgres://someone:SECRETPW@localhost:99999/db`;
    for (const args of commands) {
      const r = await cliWithUrl(args, url);
      expect(r.code, `${args.join(' ')}: exit ${r.code}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(/database URL \(--database-url or DATABASE_URL\) cannot be parsed — fix it/);
      expect(r.stderr.includes('SECRETPW'), 'the password was printed').toBe(false);
    }
  });
});
