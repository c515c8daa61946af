/**
 * A TCP proxy in front of a PostgreSQL server whose path can black-hole: while
 * it does, bytes stop flowing both ways, but no socket is closed or reset — as
 * when a NAT, firewall or load balancer silently drops a flow. New connections
 * are accepted and hang the same way. `restore()` delivers what was held back
 * and resumes forwarding, as TCP retransmission would once the path is back.
 */
import net from 'node:net';

/** The running proxy. */
export interface BlackholeProxy {
  /** The upstream URL with host and port replaced by the proxy's. */
  readonly url: string;
  /** Stops forwarding (both ways, old and new connections) without closing anything. */
  blackhole(): void;
  /** Black-holes right after forwarding the next client bytes that contain `marker` (a statement's text). */
  blackholeAfter(marker: string): Promise<void>;
  /** Delivers what was held back and forwards again. */
  restore(): void;
  close(): Promise<void>;
}

/** Starts a proxy for `upstreamUrl` on a free loopback port. */
export async function startBlackholeProxy(upstreamUrl: string): Promise<BlackholeProxy> {
  const target = new URL(upstreamUrl);
  const upstream = { port: Number(target.port), host: target.hostname };
  let holding = false;
  const held: Array<() => void> = [];
  let trap: { marker: string; sprung: () => void } | undefined;
  const sockets = new Set<net.Socket>();
  const forward = (to: net.Socket, chunk: Buffer) => {
    if (holding) held.push(() => to.write(chunk));
    else to.write(chunk);
  };
  const server = net.createServer((client) => {
    const server = net.connect(upstream.port, upstream.host);
    sockets.add(client).add(server);
    client.on('data', (chunk) => {
      forward(server, chunk);
      if (trap && !holding && chunk.includes(trap.marker)) {
        holding = true;
        trap.sprung();
        trap = undefined;
      }
    });
    server.on('data', (chunk) => forward(client, chunk));
    // A close is passed on only while the path works: a black hole swallows FINs and RSTs too.
    const close = () => {
      const end = () => {
        client.destroy();
        server.destroy();
      };
      if (holding) held.push(end);
      else end();
    };
    client.on('close', close).on('error', close);
    server.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  const url = new URL(upstreamUrl);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    url: url.toString(),
    blackhole() {
      holding = true;
    },
    blackholeAfter(marker) {
      return new Promise<void>((resolve) => {
        trap = { marker, sprung: resolve };
      });
    },
    restore() {
      holding = false;
      for (const deliver of held.splice(0)) deliver();
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
