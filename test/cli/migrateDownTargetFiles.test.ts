/**
 * `migrate down` undoes the target migrations first and pg-rekey's own schema
 * only once none is applied. Run where migrationsDir lacks an applied target
 * migration's file (a host that has the config but not the migrations, a
 * wrong --config), it must not take the target stage for finished and undo
 * pg-rekey's own migrations — the audit trail's chain (0003) among them —
 * under tables whose triggers and foreign keys still use them.
 */
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { dumpSchema } from '../../src/schema/dumpSchema.js';
import { useTestDatabase } from '../helpers/database.js';
import { expectExit, prepareRotation, type RotationWorkspace } from '../helpers/rotationFixture.js';

const db = useTestDatabase('migrate_down_files');
let ws: RotationWorkspace;
let applied: string;

beforeAll(async () => {
  ws = await prepareRotation(db.current.pool, db.current.url, 200);
  applied = (await readdir(path.join(ws.dir, 'migrations')))[0]!.replace(/\.[^.]+$/, '');
}, 120_000);
afterAll(() => ws?.cleanup());

test('with an applied target migration missing from migrationsDir, down exits 2 naming it and undoes nothing', async () => {
  const dir = path.join(ws.dir, 'migrations');
  const aside = path.join(ws.dir, 'migrations.aside');
  const before = await dumpSchema(db.current.pool, 'pgrekey');
  await rename(dir, aside);
  try {
    const layouts: [string, () => Promise<void>][] = [
      ['no migrationsDir', async () => undefined],
      ['another migration only', async () => {
        await mkdir(dir);
        await writeFile(path.join(dir, '1999999999999_other.sql'), '-- Up Migration\nSELECT 1;\n-- Down Migration\nSELECT 1;\n');
      }],
    ];
    for (const [layout, lay] of layouts) {
      await lay();
      for (const args of [['migrate', 'down'], ['migrate', 'down', '--all'], ['migrate', 'down', '--dry-run']]) {
        const r = await ws.run(args);
        expectExit(r, 2);
        expect(r.stderr, `${layout}: ${args.join(' ')}`).toContain(applied);
        expect(r.stderr).toContain('migrationsDir');
        expect(await dumpSchema(db.current.pool, 'pgrekey'), `${layout}: ${args.join(' ')}`).toBe(before);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rename(aside, dir);
  }
  // With its file back, down undoes the target migration, as before.
  const undone = await ws.run(['migrate', 'down', '--json']);
  expectExit(undone, 0);
  expect(JSON.parse(undone.stdout)).toMatchObject({ target: [applied], own: [] });
});
