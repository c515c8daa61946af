/**
 * More workers than the server lets pg-rekey's role connect: each range worker
 * takes a connection of its own, and the server refuses the ones over the
 * limit (53300). That is the database refusing us (exit 69, with what to do),
 * not a bug in pg-rekey (70); the run stays open and a rotate with fewer
 * workers finishes it.
 */
import { randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { expectAllUnderKey, expectExit, useFreshRotations } from '../helpers/rotationFixture.js';

const fresh = useFreshRotations();

it('rotate --workers above the role\'s connection limit exits 69 saying to lower --workers; fewer workers then finish the run', async () => {
  const { db, ws } = await fresh('connection_limit', 3000);
  expectExit(await ws.run(['keys', 'add', 'old']), 0);
  // The table's owner, which pg-rekey connects as, may hold three connections (superusers have no such limit).
  const role = `limited_${randomBytes(4).toString('hex')}`;
  await db.pool.query(`
    CREATE ROLE ${role} LOGIN PASSWORD 'x' CONNECTION LIMIT 3;
    ALTER TABLE people OWNER TO ${role};
    GRANT USAGE ON SCHEMA pgrekey TO ${role};
    GRANT ALL ON ALL TABLES IN SCHEMA pgrekey TO ${role};
    GRANT ALL ON ALL SEQUENCES IN SCHEMA pgrekey TO ${role};`);
  const url = new URL(db.url);
  url.username = role;
  url.password = 'x';
  const env = { env: { DATABASE_URL: url.toString() } };

  const refused = await ws.run(['rotate', '--workers', '8', '--batch-size', '100'], env);
  expectExit(refused, 69);
  expect(refused.stderr).toMatch(/SQLSTATE 53300.*lower --workers/s);
  expect(refused.stderr).not.toContain('internal error');

  const finished = await ws.run(['rotate', '--workers', '1'], env);
  expectExit(finished, 0);
  await expectAllUnderKey(db.pool, 'new');
}, 120_000);
