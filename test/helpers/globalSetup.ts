/**
 * vitest globalSetup of the database-backed test projects: starts (or finds)
 * one PostgreSQL server per `vitest run`, prepares the template, and hands
 * the admin URL to test files via provide/inject (and an env var for tools
 * outside vitest). Returns the teardown, which vitest runs even when tests fail.
 */

import { randomBytes } from 'node:crypto';
import type { TestProject } from 'vitest/node';
import { quoteIdent } from '../../src/db/quote.js';
import { startTestServer, type TestServer } from './pgServer.js';
import { ADMIN_URL_ENV } from './provided.js';
import { TEMPLATE_DATABASE, dropTemplate, prepareTemplate, withAdminClient } from './template.js';

const log = (line: string): void => {
  if (process.env.PG_REKEY_TEST_VERBOSE) process.stderr.write(`[pg-rekey test db] ${line}\n`);
};

/** Starts the server, prepares the template, provides the URLs; returns the teardown. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  const runId = randomBytes(3).toString('hex');
  const server: TestServer = await startTestServer(log);
  // On someone else's server, a fixed template name would collide with a parallel run.
  const template = server.kind === 'external' ? `${TEMPLATE_DATABASE}_${runId}` : TEMPLATE_DATABASE;
  let versionNum: number;
  try {
    await prepareTemplate(server.adminUrl, template);
    versionNum = await withAdminClient(server.adminUrl, async (admin) =>
      Number((await admin.query<{ v: string }>("SELECT current_setting('server_version_num') AS v")).rows[0]!.v),
    );
    if (!Number.isInteger(versionNum)) throw new Error(`cannot read the test server's server_version_num (got ${versionNum})`);
  } catch (err) {
    await server.stop(); // vitest does not call a teardown that was never returned
    throw err;
  }
  log(`${server.kind} server ready in ${Date.now() - started} ms`);

  project.provide('pgAdminUrl', server.adminUrl);
  project.provide('pgTemplateDatabase', template);
  project.provide('pgRunId', runId);
  project.provide('pgServerVersionNum', versionNum);
  project.provide('pgServerKind', server.kind);
  process.env[ADMIN_URL_ENV] = server.adminUrl;

  return async () => {
    try {
      if (server.kind === 'external') await dropRunDatabases(server.adminUrl, runId, template);
    } finally {
      await server.stop();
    }
  };
}

/**
 * On an external server nothing else cleans up: drop this run's databases that
 * a failed or killed test file left behind, and the run's template.
 */
async function dropRunDatabases(adminUrl: string, runId: string, template: string): Promise<void> {
  await withAdminClient(adminUrl, async (admin) => {
    const left = await admin.query<{ datname: string }>(
      `SELECT datname FROM pg_database WHERE datname LIKE $1`,
      [`pgrekey\\_test\\_${runId}\\_%`],
    );
    for (const { datname } of left.rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${quoteIdent(datname)} WITH (FORCE)`);
    }
    await dropTemplate(admin, template);
  });
}
