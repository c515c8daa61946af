/**
 * TCP keepalive on pg-rekey's connections, read back from the kernel: the
 * keepalive timer of the connection's socket in /proc/net/tcp. Without an
 * idle time the first probe waits for the kernel's default (two hours on
 * Linux), and a load balancer or NAT gateway forgets a flow silent for a few
 * minutes — the connection under a long CREATE INDEX CONCURRENTLY, say — and
 * then drops its answer (see src/db/keepAlive.ts).
 */
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import type pg from 'pg';
import { describe, expect, it } from 'vitest';
import { connectClient, createPool } from '../../src/db/pool.js';
import { useTestDatabase } from '../helpers/database.js';

const db = useTestDatabase('tcp_keepalive');

/** USER_HZ, the unit of /proc/net/tcp's timers (100 on every Linux that matters). */
const TICKS_PER_SECOND = 100;

/**
 * The timer of the TCP socket bound to local `port`: which one (0 none, 1
 * retransmit, 2 keepalive, …) and in how many seconds it fires.
 */
function socketTimer(port: number): { kind: number; seconds: number } {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      if (!fields[1]?.endsWith(`:${hexPort}`)) continue;
      const [kind, when] = fields[5]!.split(':');
      return { kind: Number.parseInt(kind!, 16), seconds: Number.parseInt(when!, 16) / TICKS_PER_SECOND };
    }
  }
  throw new Error(`no TCP socket on local port ${port}`);
}

const localPortOf = (client: pg.Client | pg.PoolClient) => (client as unknown as { connection: { stream: net.Socket } }).connection.stream.localPort!;

function urlWith(query: string): string {
  const url = new URL(db.current.url);
  for (const [name, value] of new URLSearchParams(query)) url.searchParams.set(name, value);
  return url.toString();
}

describe.runIf(process.platform === 'linux')('TCP keepalive on pg-rekey connections', () => {
  it('a pooled connection probes after 30 s of silence, not the kernel default of two hours', async () => {
    const pool = createPool(db.current.url, { max: 1 });
    try {
      const client = await pool.connect();
      await client.query('SELECT 1');
      const timer = socketTimer(localPortOf(client));
      client.release();
      expect(timer.kind).toBe(2);
      expect(timer.seconds).toBeGreaterThan(20);
      expect(timer.seconds).toBeLessThanOrEqual(30);
    } finally {
      await pool.end();
    }
  });

  it("the single session of migrations and locks too, and the URL's libpq keepalives_idle wins", async () => {
    const client = await connectClient(urlWith('keepalives_idle=45'), 'pg-rekey-test');
    try {
      await client.query('SELECT 1');
      const timer = socketTimer(localPortOf(client));
      expect(timer.kind).toBe(2);
      expect(timer.seconds).toBeGreaterThan(35);
      expect(timer.seconds).toBeLessThanOrEqual(45);
    } finally {
      await client.end();
    }
  });

  it("the URL's keepalives=0 turns keepalive off, as libpq does", async () => {
    const pool = createPool(urlWith('keepalives=0'), { max: 1 });
    try {
      const client = await pool.connect();
      await client.query('SELECT 1');
      const timer = socketTimer(localPortOf(client));
      client.release();
      expect(timer.kind).not.toBe(2);
    } finally {
      await pool.end();
    }
  });
});
