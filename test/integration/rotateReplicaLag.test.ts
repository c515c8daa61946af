/**
 * `rotate --max-replica-lag`: against a primary with a real streaming replica,
 * a rotation waits (and says so) while the replica's replay is paused and its
 * lag grows past the limit, and goes on once replay resumes. A role that
 * cannot read replication lag is refused with exit 2: to it the lag would read
 * as none and the throttle would never wait.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertReplicaLagReadable } from '../../src/rotation/throttle.js';
import { expectAllUnderKey, expectExit, prepareRotation, startCli, waitForStderr, type RotationWorkspace } from '../helpers/rotationFixture.js';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../helpers/streamingReplica.js';

let servers: PrimaryWithReplica;
let pool: pg.Pool;
let ws: RotationWorkspace;
const ROWS = 5000;

beforeAll(async () => {
  if (process.platform !== 'linux') return;
  servers = await startPrimaryWithReplica();
  pool = new pg.Pool({ connectionString: servers.primary.adminUrl, max: 4 });
  ws = await prepareRotation(pool, servers.primary.adminUrl, ROWS);
}, 180_000);

afterAll(async () => {
  await ws?.cleanup();
  await pool?.end();
  await servers?.stop();
});

const replayLagMs = async () =>
  (await pool.query<{ lag: number | null }>(`SELECT max(extract(epoch FROM replay_lag) * 1000)::float8 AS lag FROM pg_stat_replication`)).rows[0]!.lag ?? 0;
const rotatedRows = async () => (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM people WHERE email_key_version IS NOT NULL`)).rows[0]!.n;

// The replica is built from /proc and a copied data directory: Linux only.
describe.skipIf(process.platform !== 'linux')('rotate --max-replica-lag', () => {
  it('waits while the replica lags more than the limit, and finishes once it catches up', async () => {
    await servers.onReplica('SELECT pg_wal_replay_pause()');
    // Write some WAL the paused replica cannot apply, until the primary reports the lag.
    for (let i = 0; (await replayLagMs()) < 2000; i++) {
      expect(i, 'replay_lag never passed 2 s with replay paused').toBeLessThan(100);
      await pool.query(`CREATE TABLE IF NOT EXISTS wal_noise (n int); INSERT INTO wal_noise VALUES (${i})`);
      await sleep(200);
    }
    const cli = await startCli(ws, ['rotate', '--max-replica-lag', '1s', '--batch-size', '250']);
    await waitForStderr(cli, /lags more than --max-replica-lag: waiting/);
    await sleep(2000);
    expect(cli.child.exitCode).toBeNull();
    expect(await rotatedRows()).toBe(0);

    await servers.onReplica('SELECT pg_wal_replay_resume()');
    const result = await cli.done;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/"replicaLagMs":\d+.*waiting/);
    expect(result.stderr).toMatch(/replicas caught up: rotating again/);
    expect(await expectAllUnderKey(pool, 'new')).toBe(ROWS);
  }, 120_000);

  it('stops at --max-duration while waiting, without writing a batch the lagging replica would have to replay', async () => {
    await pool.query(`UPDATE people SET email_key_version = NULL`);
    await servers.onReplica('SELECT pg_wal_replay_pause()');
    try {
      for (let i = 0; (await replayLagMs()) < 2000; i++) {
        expect(i, 'replay_lag never passed 2 s with replay paused').toBeLessThan(100);
        await pool.query(`CREATE TABLE IF NOT EXISTS wal_noise (n int); INSERT INTO wal_noise VALUES (${i})`);
        await sleep(200);
      }
      const cli = await startCli(ws, ['rotate', '--max-replica-lag', '1s', '--max-duration', '3s', '--workers', '1', '--batch-size', '250', '--json']);
      await waitForStderr(cli, /lags more than --max-replica-lag: waiting/);
      const result = await cli.done;
      expect(result.code, result.stderr).toBe(75);
      // The replica never caught up: no batch went to the primary after the wait gave up.
      expect(await rotatedRows()).toBe(0);
    } finally {
      await servers.onReplica('SELECT pg_wal_replay_resume()');
    }
    expectExit(await ws.run(['rotate', '--max-replica-lag', '1s']), 0);
    expect(await expectAllUnderKey(pool, 'new')).toBe(ROWS);
  }, 120_000);

  it('refuses a role that cannot read replication lag', async () => {
    const client = await pool.connect();
    try {
      await client.query(`CREATE ROLE lag_blind NOLOGIN`);
      await client.query(`SET ROLE lag_blind`);
      await expect(assertReplicaLagReadable(client)).rejects.toThrow(/GRANT pg_monitor/);
      await client.query(`RESET ROLE`);
      await client.query(`GRANT pg_monitor TO lag_blind`);
      await client.query(`SET ROLE lag_blind`);
      await expect(assertReplicaLagReadable(client)).resolves.toBeUndefined();
    } finally {
      await client.query(`RESET ROLE`);
      client.release();
    }
    // Through the CLI: exit 2, nothing rotated.
    await pool.query(`UPDATE people SET email_key_version = NULL`);
    await pool.query(`CREATE ROLE lag_blind_login LOGIN PASSWORD 'x' IN ROLE pg_read_all_data, pg_write_all_data`);
    await pool.query(`GRANT ALL ON SCHEMA pgrekey TO lag_blind_login; GRANT ALL ON ALL TABLES IN SCHEMA pgrekey TO lag_blind_login`);
    const url = new URL(servers.primary.adminUrl);
    url.username = 'lag_blind_login';
    url.password = 'x';
    const refused = await ws.run(['rotate', '--max-replica-lag', '1s'], { env: { DATABASE_URL: url.toString() } });
    expectExit(refused, 2);
    expect(refused.stderr).toMatch(/cannot read replication lag/);
    expect(await rotatedRows()).toBe(0);
  }, 60_000);
});
