/**
 * A reader that goes away: `pg-rekey history | head -1`, `status --watch |
 * head -3`, a deploy hook whose log shipper died. The pipe closes and the
 * CLI's next write fails with EPIPE. That must not end the command half-way
 * (a rotation included) nor turn into exit 1 ("found failures") with a stack
 * trace: the output is dropped and the command ends with its own exit code.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI_PATH } from '../helpers/cli.js';
import { useTestDatabase, waitForLockWait } from '../helpers/database.js';
import { expectAllUnderKey, prepareRotation, startCli, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('closedpipes');
let ws: RotationWorkspace;
const ROWS = 2000;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, ROWS);
}, 120_000);

afterAll(async () => {
  await ws?.cleanup();
});

interface ClosedPipeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What the CLI wrote on the stream that stayed open. */
  other: string;
  timedOut: boolean;
}

/**
 * Runs the CLI in the workspace with the read end of its `closed` stream
 * (stdout or stderr) closed at once, as `| head -c 0` does before the CLI
 * writes anything; collects the other stream.
 */
function runWithClosed(closed: 'stdout' | 'stderr', args: string[], timeoutMs = 60_000): Promise<ClosedPipeResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_PATH, ...args, '--log-level', 'warn'], {
      cwd: ws.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, NO_COLOR: '1', ...ws.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child[closed].destroy();
    let other = '';
    child[closed === 'stdout' ? 'stderr' : 'stdout'].on('data', (d) => (other += String(d)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, other, timedOut });
    });
  });
}

describe('the reader of stdout or stderr goes away', () => {
  it('a rotate whose stderr reader has gone finishes the rotation and exits 0', async () => {
    // Human mode: rotate says "Started rotation run N" on stderr right after opening the run.
    const r = await runWithClosed('stderr', ['rotate', '--batch-size', '250']);
    expect({ code: r.code, signal: r.signal }, r.other).toEqual({ code: 0, signal: null });
    expect(r.other).toContain('Rotation complete.');
    const status = JSON.parse((await ws.run(['status', '--json'])).stdout);
    expect(status.status).toBe('succeeded');
    expect(await expectAllUnderKey(db.current.pool, 'new')).toBe(ROWS);
  });

  it.each([
    [['history']],
    [['history', '--json']],
    [['keys', 'list', '--json']],
    [['migrate', 'status']],
    [['status']],
    [['verify', '--json']],
    [['keys', 'generate', '--format', 'fernet']],
  ])('%j with stdout closed exits with its own code, no stack trace', async (args) => {
    const r = await runWithClosed('stdout', args);
    expect({ code: r.code, signal: r.signal }, r.other).toEqual({ code: 0, signal: null });
    expect(r.other).not.toMatch(/EPIPE|Unhandled|internal error/);
  });

  it('status --watch stops when its reader goes away, though the rotation it watches is still working', async () => {
    // A rotation held on a row lock keeps its run "running" with a live lease,
    // so --watch would otherwise refresh until it finishes.
    const blocker = await db.current.pool.connect();
    let rotation: Awaited<ReturnType<typeof startCli>> | undefined;
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM people FOR UPDATE');
      // Back to the old key (the first test rotated everything to the new one), waiting up to a minute per lock.
      rotation = await startCli(ws, ['rotate', '--to', 'old', '--workers', '1', '--lock-timeout', '60s', '--json']);
      await waitForLockWait(db.current.pool, '%people%', { until: rotation.done });
      const watch = await runWithClosed('stdout', ['status', '--watch'], 30_000);
      expect({ code: watch.code, timedOut: watch.timedOut }, watch.other).toEqual({ code: 0, timedOut: false });
      expect(watch.other).not.toMatch(/EPIPE|Unhandled/);
      // The watch ended on its own: the rotation is still blocked, its run open.
      await waitForLockWait(db.current.pool, '%people%', { until: rotation.done });
      const status = JSON.parse((await ws.run(['status', '--json'])).stdout);
      expect(status.status).toBe('running');
    } finally {
      await blocker.query('ROLLBACK');
      blocker.release();
    }
    const rotated = await rotation!.done;
    expect(rotated.code, rotated.stderr).toBe(0);
  });
});
