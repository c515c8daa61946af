/**
 * Every connection runs a SET before it is handed out (pool.ts). A backend
 * terminated at that moment (pg_terminate_backend, a failover) sends its FATAL
 * in the same packet as the SET's reply, when no query is active: the driver
 * then emits 'error' on the client, and before the caller has the client
 * nobody listens — an unhandled 'error' event, which kills the process (seen
 * once in rotateTerminatedSessions). A proxy stages exactly that packet.
 */
import net from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createPool } from '../../src/db/pool.js';
import { useTestDatabase } from '../helpers/database.js';

const db = useTestDatabase('connect_setup_error');
let proxy: net.Server;
let proxyUrl: string;

/** An ErrorResponse message: FATAL 57P01, as pg_terminate_backend sends it. */
function fatalTerminated(): Buffer {
  const fields = ['SFATAL', 'VFATAL', 'C57P01', 'Mterminating connection due to administrator command'];
  const body = Buffer.concat([...fields.map((f) => Buffer.from(`${f}\0`, 'utf8')), Buffer.from([0])]);
  const header = Buffer.alloc(5);
  header.write('E', 0, 'ascii');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

beforeAll(async () => {
  const target = new URL(db.current.url);
  const upstream = { port: Number(target.port), host: target.hostname };
  // Forwards both ways; the server's first reply after the client's SET gets the FATAL appended, then the socket closes.
  proxy = net.createServer((client) => {
    const server = net.connect(upstream.port, upstream.host);
    let setSent = false;
    client.on('data', (chunk) => {
      if (chunk.includes('SET DateStyle')) setSent = true;
      server.write(chunk);
    });
    server.on('data', (chunk) => {
      if (!setSent) return void client.write(chunk);
      client.end(Buffer.concat([chunk, fatalTerminated()]));
      server.destroy();
    });
    const close = () => {
      client.destroy();
      server.destroy();
    };
    client.on('error', close);
    server.on('error', close);
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const { port } = proxy.address() as net.AddressInfo;
  target.hostname = '127.0.0.1';
  target.port = String(port);
  proxyUrl = target.toString();
});
afterAll(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

it('a backend terminated while its connection is being set up fails that connect; no unhandled error event', async () => {
  const unhandled: unknown[] = [];
  const onUncaught = (err: unknown) => unhandled.push(err);
  process.on('uncaughtException', onUncaught);
  const pool = createPool(proxyUrl, { max: 1 });
  try {
    await expect(pool.query('SELECT 1')).rejects.toMatchObject({ code: '57P01' });
    // Let any event still queued on the closed socket fire.
    await new Promise((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
  } finally {
    process.off('uncaughtException', onUncaught);
    await pool.end();
  }
});
