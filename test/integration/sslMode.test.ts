/**
 * sslmode in the database URL, against a server with SSL on and a
 * self-signed certificate (made with openssl for this test; a private server,
 * since ssl is a server-wide setting). node-postgres checks the certificate
 * for sslmode=require as for verify-full, unlike libpq (src/db/sslMode.ts):
 * pg-rekey says so when the check fails, with the two ways out, and no longer
 * prints node-postgres's eight-line SECURITY WARNING on every run.
 */
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmbeddedPostgres, type EmbeddedServer } from '../../support/embeddedPostgres.js';
import { createWorkspace, expectExit, type RotationWorkspace } from '../helpers/rotationFixture.js';

let root: string;
let server: EmbeddedServer;
let certificate: string;
const workspaces: RotationWorkspace[] = [];

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'pg-rekey-ssl-'));
  await chmod(root, 0o755); // the server's own user must traverse it when we run as root
  const dataDir = path.join(root, 'data');
  server = await startEmbeddedPostgres({ dataDir });
  // Into the data directory, owned like it: the server refuses a key others can read.
  certificate = path.join(dataDir, 'server.crt');
  const key = path.join(dataDir, 'server.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', certificate], { stdio: 'ignore' });
  const owner = await stat(dataDir);
  for (const file of [key, certificate]) await chown(file, owner.uid, owner.gid);
  await chmod(key, 0o600);
  const admin = new pg.Client({ connectionString: server.adminUrl });
  await admin.connect();
  try {
    await admin.query("ALTER SYSTEM SET ssl = on");
    await admin.query('SELECT pg_reload_conf()');
  } finally {
    await admin.end();
  }
}, 120_000);

afterAll(async () => {
  for (const ws of workspaces) await ws.cleanup();
  await server?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** `migrate status` (it only reads) with `query` on the server's URL, host name localhost as the certificate says. */
async function migrateStatus(query: string) {
  const url = new URL(server.adminUrl);
  url.hostname = 'localhost';
  url.search = query;
  const ws = await createWorkspace(url.toString());
  workspaces.push(ws);
  return ws.run(['migrate', 'status']);
}

it("sslmode=require with a certificate Node's CAs do not vouch for: exit 69, saying why and what to do", async () => {
  const result = await migrateStatus('sslmode=require');
  expectExit(result, 69);
  expect(result.stderr).toMatch(/the SSL connection failed: self-signed certificate/);
  expect(result.stderr).toMatch(/sslmode=require, prefer and verify-ca are checked as verify-full, unlike libpq/);
  expect(result.stderr).toMatch(/sslrootcert=\/path\/to\/ca\.pem/);
  expect(result.stderr).toMatch(/add uselibpqcompat=true to the URL/);
  expect(result.stderr).not.toMatch(/SECURITY WARNING/);
}, 60_000);

it('connects with the CA named by sslrootcert, for require as for verify-full, with no SECURITY WARNING', async () => {
  for (const mode of ['require', 'verify-full', 'verify-ca', 'prefer']) {
    const result = await migrateStatus(`sslmode=${mode}&sslrootcert=${encodeURIComponent(certificate)}`);
    expectExit(result, 0);
    expect(result.stderr, mode).not.toMatch(/SECURITY WARNING/);
  }
}, 60_000);

it("connects with uselibpqcompat=true: libpq's require, encrypted without checking the certificate", async () => {
  const result = await migrateStatus('sslmode=require&uselibpqcompat=true');
  expectExit(result, 0);
  expect(result.stderr).not.toMatch(/SECURITY WARNING/);
}, 60_000);
