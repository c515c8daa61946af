/**
 * A database URL's libpq `connect_timeout` is honoured (pg's JavaScript client
 * ignores it): against a server that accepts the TCP connection and never
 * answers — a dead proxy, a black-holed port — a command gives up after the
 * URL's timeout, not pg-rekey's default 10 s, and exits 69. A value libpq
 * would refuse exits 2 before any connection is tried.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectExit } from '../helpers/rotationFixture.js';
import { createProject, type TestProject } from './project.js';

let silent: Server;
const sockets = new Set<Socket>();
const projects: TestProject[] = [];
let port: number;

beforeAll(async () => {
  silent = createServer((socket) => {
    // Accept, read and never answer.
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  port = (silent.address() as { port: number }).port;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((resolve) => silent.close(resolve));
  await Promise.all(projects.map((p) => p.remove()));
});

/** Runs the CLI in a project whose database URL is the silent server's, with `query`. */
async function runAgainstSilent(query: string, args: string[], timeoutMs?: number) {
  const project = await createProject(`postgres://u:secret-pw@127.0.0.1:${port}/db${query}`);
  projects.push(project);
  return project.cli(args, timeoutMs ? { timeoutMs } : {});
}

describe("the URL's connect_timeout", () => {
  it('bounds a single-session command (migrate status): exit 69 naming the 2 s it waited', async () => {
    const result = await runAgainstSilent('?connect_timeout=2', ['migrate', 'status']);
    expectExit(result, 69);
    expect(result.stderr).toContain('no answer within 2 s');
    expect(result.stderr).not.toContain('secret-pw');
  }, 60_000);

  it('bounds a pooled command (history): exit 69 well before the default 10 s', async () => {
    // Killed by the harness at 9 s, the run would have no exit code: only the URL's 2 s ends it in time.
    const result = await runAgainstSilent('?connect_timeout=2', ['history'], 9000);
    expectExit(result, 69);
    expect(result.stderr).toContain('connection timeout');
  }, 60_000);

  it('exits 2 on a value libpq refuses, naming the setting, not the URL', async () => {
    const result = await runAgainstSilent('?connect_timeout=ten', ['history']);
    expectExit(result, 2);
    expect(result.stderr).toContain('connect_timeout=ten');
    expect(result.stderr).not.toContain('secret-pw');
  }, 60_000);
});
