/**
 * A table in a logical-replication publication: adding columns to it stops
 * replication at the first change unless the subscribers have them, so
 * `target add` says so (and lists the publications in --json).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from '../helpers/database.js';
import { createWorkspace, expectExit, seedPeople, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('published');
let ws: RotationWorkspace;
const ADD = ['target', 'add', '--table', 'public.people', '--columns', 'email,mobno', '--format', 'django-fernet-v1', '--dry-run'];

beforeAll(async () => {
  await seedPeople(db.current.pool, 10);
  ws = await createWorkspace(db.current.url);
  expectExit(await ws.run(['migrate', 'up']), 0);
});
afterAll(() => ws?.cleanup());

describe('target add on a published table', () => {
  it('says nothing of replication for an unpublished table', async () => {
    const result = await ws.run(ADD);
    expectExit(result, 0);
    expect(result.stdout).not.toMatch(/published/);
  });

  it('warns that the subscribers need the new columns first, naming the publications', async () => {
    await db.current.pool.query(`CREATE PUBLICATION people_pub FOR TABLE people`);
    const result = await ws.run(ADD);
    expectExit(result, 0);
    expect(result.stdout).toContain(
      'Note: public.people is published (people_pub). Logical replication stops at the first change to it unless each subscriber',
    );
    const json = await ws.run([...ADD, '--json']);
    expect(JSON.parse(json.stdout).publications).toEqual(['people_pub']);
  });
});
