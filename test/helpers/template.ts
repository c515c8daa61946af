/**
 * The template every test database is cloned from. Cloning (CREATE DATABASE
 * … TEMPLATE) copies files instead of replaying DDL, so a fresh migrated
 * database per test file costs milliseconds.
 */

import pg from 'pg';
import { quoteIdent } from '../../src/db/quote.js';
import { migrate } from '../../src/schema/migrate.js';

/** The template's name on a server started for this run (on an external server a suffix is added). */
export const TEMPLATE_DATABASE = 'pgrekey_template';

/**
 * Creates `templateName` on the server at `adminUrl` and fills it.
 *
 * This is the one hook for template contents: today the template is empty;
 * the issue that adds our migrations runs them here, between the CREATE and
 * the seal. Afterwards the database is marked IS_TEMPLATE and
 * ALLOW_CONNECTIONS false: CREATE DATABASE … TEMPLATE fails with 55006 while
 * any session is connected to the template, and refusing connections makes
 * sure no test (or stray pool) ever is.
 */
export async function prepareTemplate(adminUrl: string, templateName: string = TEMPLATE_DATABASE): Promise<void> {
  await withAdminClient(adminUrl, async (admin) => {
    await dropTemplate(admin, templateName);
    await admin.query(`CREATE DATABASE ${quoteIdent(templateName)}`);
  });

  const url = new URL(adminUrl);
  url.pathname = `/${encodeURIComponent(templateName)}`;
  // Every test database starts with pg-rekey's own schema (default name) migrated;
  // tests that need an unmigrated database run "migrate down" or create their own.
  await migrate({ databaseUrl: url.toString(), schema: 'pgrekey', direction: 'up' });

  await withAdminClient(adminUrl, async (admin) => {
    await admin.query(`ALTER DATABASE ${quoteIdent(templateName)} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false`);
  });
}

/** Drops the template if it exists (a template must be unmarked before DROP accepts it). */
export async function dropTemplate(admin: pg.Client, templateName: string = TEMPLATE_DATABASE): Promise<void> {
  const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [templateName]);
  if (exists.rowCount === 0) return;
  await admin.query(`ALTER DATABASE ${quoteIdent(templateName)} WITH IS_TEMPLATE false`);
  await admin.query(`DROP DATABASE ${quoteIdent(templateName)} WITH (FORCE)`);
}

/** Runs `fn` with a short-lived superuser connection to the `postgres` database. */
export async function withAdminClient<T>(adminUrl: string, fn: (admin: pg.Client) => Promise<T>): Promise<T> {
  const admin = new pg.Client({ connectionString: adminUrl, application_name: 'pg-rekey-test-admin' });
  await admin.connect();
  try {
    return await fn(admin);
  } finally {
    await admin.end();
  }
}
