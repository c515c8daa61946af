/**
 * Names and types of the values globalSetup hands to test files through
 * vitest's provide/inject. Importing this module (for its side effect on the
 * `vitest` module's types) makes `inject('pgAdminUrl')` typed.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    /** Superuser URL of the test server (database `postgres`). */
    pgAdminUrl: string;
    /** The database test databases are cloned from (see template.ts). */
    pgTemplateDatabase: string;
    /** Unique per `vitest run`; prefixes this run's test databases so teardown can find leftovers. */
    pgRunId: string;
    /** Which discovery step found the server, for diagnostics. */
    pgServerKind: 'external' | 'docker' | 'embedded';
    /**
     * The server's server_version_num (180004 for 18.4). The suite runs on the
     * embedded 18 by default, and on a developer's own server (an older one,
     * say) through PG_REKEY_TEST_DATABASE_URL: tests of a version's features
     * run where the server has them.
     */
    pgServerVersionNum: number;
  }
}

/** Env var set by globalSetup with the admin URL, for subprocesses and tools outside vitest's inject. */
export const ADMIN_URL_ENV = 'PG_REKEY_TEST_ADMIN_URL';

export {};
