/**
 * A small connection pooler in front of the test server, for tests of what
 * pg-rekey does behind PgBouncer (no PgBouncer where the tests run). Like
 * PgBouncer it accepts clients itself (any user and password) and relays
 * their protocol messages to a few server connections it holds open:
 *
 * - 'transaction' mode hands a client a server for one transaction and takes
 *   it back at the ReadyForQuery that ends it (status idle), reusing the most
 *   recently released server first, as PgBouncer does;
 * - 'session' mode keeps a client on one server until it disconnects.
 *
 * The server connections are node-postgres clients, so authentication (SCRAM)
 * is theirs; once connected, their sockets are taken over and relayed raw.
 * Enough of the protocol for pg-rekey's commands: no SSL, no COPY, no cancel.
 */
import net from 'node:net';
import pg from 'pg';

export type PoolMode = 'transaction' | 'session';

export interface ConnectionPooler {
  /** The URL clients connect to (user and password are accepted as given). */
  readonly url: string;
  close(): Promise<void>;
}

interface Server {
  client: pg.Client;
  socket: net.Socket;
  /** The pooled client it serves now, if any. */
  servingClient: Peer | undefined;
  pending: Buffer;
}

interface Peer {
  socket: net.Socket;
  server: Server | undefined;
  /** Messages waiting for a server. */
  queued: Buffer[];
}

/** Splits complete messages (type byte + int32 length) off `buffer`; returns them and the rest. */
function splitMessages(buffer: Buffer): { messages: Buffer[]; rest: Buffer } {
  const messages: Buffer[] = [];
  let offset = 0;
  while (buffer.length - offset >= 5) {
    const length = buffer.readInt32BE(offset + 1);
    if (buffer.length - offset < 1 + length) break;
    messages.push(buffer.subarray(offset, offset + 1 + length));
    offset += 1 + length;
  }
  return { messages, rest: buffer.subarray(offset) };
}

function message(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, 'ascii');
  header.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([header, body]);
}

const cstrings = (...parts: string[]) => Buffer.from(parts.map((p) => `${p}\0`).join(''), 'utf8');

/** What a server says to a client that logged in: ok, its parameters, a key, ready. */
function loginReply(pid: number): Buffer {
  const parameters = [
    ['server_version', '18.0'],
    ['server_encoding', 'UTF8'],
    ['client_encoding', 'UTF8'],
    ['DateStyle', 'ISO, MDY'],
    ['integer_datetimes', 'on'],
    ['standard_conforming_strings', 'on'],
    ['TimeZone', 'UTC'],
  ];
  const key = Buffer.alloc(8);
  key.writeInt32BE(pid, 0);
  return Buffer.concat([
    message('R', Buffer.from([0, 0, 0, 0])),
    ...parameters.map(([name, value]) => message('S', cstrings(name!, value!))),
    message('K', key),
    message('Z', Buffer.from('I')),
  ]);
}

export async function startConnectionPooler(upstreamUrl: string, options: { mode: PoolMode; servers?: number }): Promise<ConnectionPooler> {
  const idle: Server[] = [];
  const waiting: Peer[] = [];
  const all: Server[] = [];
  const peers = new Set<Peer>();

  const release = (server: Server) => {
    server.servingClient = undefined;
    const next = waiting.shift();
    if (next) assign(next, server);
    else idle.push(server);
  };

  const assign = (peer: Peer, server: Server) => {
    peer.server = server;
    server.servingClient = peer;
    for (const bytes of peer.queued.splice(0)) server.socket.write(bytes);
  };

  for (let i = 0; i < (options.servers ?? 2); i++) {
    const client = new pg.Client({ connectionString: upstreamUrl });
    client.on('error', () => {});
    await client.connect();
    const socket = (client as unknown as { connection: { stream: net.Socket } }).connection.stream;
    socket.removeAllListeners('data');
    const server: Server = { client, socket, servingClient: undefined, pending: Buffer.alloc(0) };
    socket.on('data', (chunk: Buffer) => {
      const { messages, rest } = splitMessages(Buffer.concat([server.pending, chunk]));
      server.pending = rest;
      for (const m of messages) {
        const peer = server.servingClient;
        if (!peer) continue;
        peer.socket.write(m);
        // ReadyForQuery, idle: the transaction is over, and in transaction mode so is the assignment.
        if (m[0] === 0x5a && m[5] === 0x49 && options.mode === 'transaction') {
          peer.server = undefined;
          release(server);
        }
      }
    });
    all.push(server);
    idle.push(server);
  }

  let nextPid = 900_000;
  const listener = net.createServer((socket) => {
    const peer: Peer = { socket, server: undefined, queued: [] };
    peers.add(peer);
    let started = false;
    let pending: Buffer = Buffer.alloc(0);
    socket.on('error', () => {});
    socket.on('close', () => {
      peers.delete(peer);
      if (waiting.includes(peer)) waiting.splice(waiting.indexOf(peer), 1);
      const server = peer.server;
      if (!server) return;
      // Left mid-transaction (or in session mode): roll back before another client gets the server.
      peer.server = undefined;
      server.servingClient = undefined;
      server.socket.write(message('Q', cstrings('ROLLBACK')));
      setTimeout(() => release(server), 50);
    });
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      if (!started) {
        if (pending.length < 8) return;
        const length = pending.readInt32BE(0);
        if (pending.length < length) return;
        const code = pending.readInt32BE(4);
        pending = pending.subarray(length);
        if (code !== 196608) {
          socket.destroy(); // SSL, GSSAPI or cancel requests: not served here
          return;
        }
        started = true;
        socket.write(loginReply(nextPid++));
      }
      const { messages, rest } = splitMessages(pending);
      pending = rest;
      for (const m of messages) {
        if (m[0] === 0x58) {
          socket.end(); // Terminate
          return;
        }
        if (peer.server) {
          peer.server.socket.write(m);
          continue;
        }
        peer.queued.push(m);
        if (waiting.includes(peer)) continue;
        const server = idle.pop();
        if (server) assign(peer, server);
        else waiting.push(peer);
      }
    });
  });
  await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
  const port = (listener.address() as net.AddressInfo).port;
  const url = new URL(upstreamUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    close: async () => {
      for (const peer of peers) peer.socket.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      await Promise.all(all.map((s) => s.client.end().catch(() => undefined)));
    },
  };
}
