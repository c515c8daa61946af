/**
 * Progress on a terminal: rotate draws a progress bar per target (rows, rate,
 * ETA) when stderr is a TTY, instead of the JSON lines it writes to a pipe.
 * The CLI runs under util-linux script(1), which gives it a pseudo-terminal;
 * the test is skipped where script(1) is missing.
 */
import { execFileSync, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from '../helpers/cli.js';
import { useTestDatabase } from '../helpers/database.js';
import { expectAllUnderKey, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const hasScript = (() => {
  try {
    execFileSync('script', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const db = useTestDatabase('terminal');
let ws: RotationWorkspace;
const ROWS = 5000;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
}, 120_000);

afterAll(async () => {
  await ws?.cleanup();
});

/** Runs the CLI with a pseudo-terminal as stdin/stdout/stderr; resolves with everything it drew. */
function runOnTerminal(args: string[], term = 'xterm'): Promise<{ code: number | null; screen: string }> {
  const command = [process.execPath, CLI_PATH, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    // -q no banner, -e the command's exit code, -f flush as it draws, -c the command; the typescript goes nowhere.
    const child = spawn('script', ['-qefc', command, '/dev/null'], {
      cwd: ws.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TERM: term, COLUMNS: '120', ...ws.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let screen = '';
    child.stdout.on('data', (d) => (screen += String(d)));
    child.stderr.on('data', (d) => (screen += String(d)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, screen }));
  });
}

describe.skipIf(!hasScript)('rotate on a terminal', () => {
  it('draws a progress bar per target with rows, rate and ETA, and no JSON log lines', async () => {
    const { code, screen } = await runOnTerminal(['rotate', '--batch-size', '250', '--max-rate', '10000']);
    expect(code, screen).toBe(0);
    // The bar: target, filled and empty shades, done/total rows, rate, ETA.
    expect(screen).toMatch(/public\.people \|[█░]+\| \d+\/\d+ rows · \d+ rows\/s · ETA /);
    // It finished full: the last frame shows every row of the estimate done.
    expect(screen).toMatch(/public\.people \|█+\| (\d+)\/\1 rows/);
    expect(screen).not.toMatch(/"msg":"progress"/);
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
  }, 120_000);

  it('writes log lines, not a bar, on a terminal that cannot draw (TERM=dumb)', async () => {
    // Rotated to the new key by the test above: back to the old one and a run of its own.
    const { code, screen } = await runOnTerminal(['rotate', '--to', 'old', '--batch-size', '250', '--reason', 'dumb terminal'], 'dumb');
    expect(code, screen).toBe(0);
    expect(screen).not.toMatch(/\x1b\[/);
    expect(screen).not.toMatch(/[█░]/);
    expect(screen).toMatch(/"msg":"progress"/);
    expect(await expectAllUnderKey(db.current.pool, 'old')).toBe(ROWS);
  }, 120_000);
});
