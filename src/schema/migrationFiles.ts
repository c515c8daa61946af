import { readdir } from 'node:fs/promises';
import path from 'node:path';

// node-pg-migrate names a migration by its file name without the extension.
const MIGRATION_FILE = /\.(sql|js|cjs|mjs|ts|cts|mts)$/;

/** Names of the migration files in `dir` (none if it does not exist), in file-name order. */
export async function migrationFileNames(dir: string): Promise<string[]> {
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return [];
  }
  return files
    .filter((f) => !f.startsWith('.') && MIGRATION_FILE.test(f))
    .map((f) => path.basename(f).replace(MIGRATION_FILE, ''))
    .sort();
}
