/**
 * Schema drift guard (issue 3 §5): sql/schema.sql must equal the normalised
 * dump of a freshly migrated database. PG_REKEY_WRITE_SCHEMA=1 (what
 * `npm run schema:dump` sets) rewrites the file instead of comparing.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { dumpSchema } from '../../src/schema/dumpSchema.js';
import { useTestDatabase } from '../helpers/database.js';

const SCHEMA_FILE = fileURLToPath(new URL('../../sql/schema.sql', import.meta.url));
const db = useTestDatabase('schema_dump');

test('sql/schema.sql matches a freshly migrated database', async () => {
  // Test databases are cloned from the template, which holds exactly our migrations.
  const dump = await dumpSchema(db.current.pool, 'pgrekey');
  if (process.env.PG_REKEY_WRITE_SCHEMA === '1') {
    await writeFile(SCHEMA_FILE, dump);
    return;
  }
  const committed = await readFile(SCHEMA_FILE, 'utf8').catch(() => '');
  expect(
    committed === dump,
    'sql/schema.sql is out of date with migrations/ — run "npm run schema:dump" and commit the result',
  ).toBe(true);
  expect(committed).toContain('CREATE TABLE pgrekey.keys');
});
