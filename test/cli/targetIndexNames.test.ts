/**
 * Two targets whose "<table>_<column>" coincide ("account_holder" + "email",
 * "account" + "holder_email") each get their own key-version index (index
 * names share the schema's namespace), and undoing one target leaves the
 * other's index alone.
 */
import { afterAll, beforeAll, expect, test } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { createProject, type TestProject } from './project.js';

const db = useTestDatabase('target_index_names');
let project: TestProject;

/** The non-primary-key indexes of `table`. */
const indexesOn = async (table: string) =>
  (
    await db.current.pool.query<{ name: string }>(
      `SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass AND NOT indisprimary ORDER BY 1`,
      [table],
    )
  ).rows.map((r) => r.name);

beforeAll(async () => {
  await db.current.pool.query(`
    CREATE TABLE public.account_holder (id int PRIMARY KEY, email text);
    CREATE TABLE public.account (id int PRIMARY KEY, holder_email text);`);
  project = await createProject(db.current.url, { keyIds: ['k1'] });
});
afterAll(() => project?.remove());

test('each target gets its own index; undoing one leaves the other intact', async () => {
  for (const [table, column] of [['account_holder', 'email'], ['account', 'holder_email']] as const) {
    const added = await project.cli(['target', 'add', '--table', table, '--columns', column, '--format', 'fernet']);
    expect(added.code, added.stderr).toBe(0);
  }
  const up = await project.cli(['migrate', 'up']);
  expect(up.code, up.stderr).toBe(0);
  const holderIndexes = await indexesOn('public.account_holder');
  expect(holderIndexes).toHaveLength(1);
  expect(await indexesOn('public.account')).toHaveLength(1);

  const down = await project.cli(['migrate', 'down']); // the account target, added last
  expect(down.code, down.stderr).toBe(0);
  expect(await indexesOn('public.account')).toEqual([]);
  expect(await indexesOn('public.account_holder')).toEqual(holderIndexes);
});
