/**
 * A server that accepts the TCP connection and never answers (a dead proxy, a
 * stuck pooler): every command gives up after the connect timeout (10 s) and
 * exits 69 instead of hanging.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';

let server: Server;
const sockets: Socket[] = [];
let url: string;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'pg-rekey-unresponsive-'));
  await writeFile(path.join(dir, 'pg-rekey.config.json'), JSON.stringify({ keys: [{ id: 'k1', secret: 'env:K1' }] }));
  // Accepts connections and reads nothing back: not even the SSL or start-up reply.
  server = createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  url = `postgres://someone:pw@127.0.0.1:${port}/db`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

describe('a server that never answers', () => {
  it('migrate up, migrate status and keys list exit 69 after the connect timeout', async () => {
    const commands = [['migrate', 'up'], ['migrate', 'status'], ['keys', 'list']];
    // In parallel: each waits out the same 10 s timeout.
    const results = await Promise.all(
      commands.map((args) => runCli([...args, '--database-url', url], { cwd: dir, timeoutMs: 30_000 })),
    );
    results.forEach((r, i) => {
      expect(r.timedOut, `${commands[i]!.join(' ')} hung`).toBe(false);
      expect(r.code, `${commands[i]!.join(' ')}: ${r.stderr}`).toBe(69);
      expect(r.stderr).toMatch(/database unavailable/);
    });
  });
});
