import { z } from 'zod';

/** The stored formats pg-rekey understands (DESIGN §4). */
export const FORMAT_IDS = ['fernet', 'django-fernet-v1', 'django-fernet-v2', 'aes-256-gcm'] as const;

/** One of {@link FORMAT_IDS}. */
export type FormatId = (typeof FORMAT_IDS)[number];

// Key ids appear in stored values (FERNET_V2:<id>:, the aes envelope), in the
// registry and on the command line, so they are restricted to a safe alphabet.
const keyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$/, {
    message: 'expected a key id of 1-63 letters, digits, "_", ".", ":" or "-", starting with a letter or digit',
  });

// A secret is always a reference; a literal secret in a config file would end up
// in version control, backups and support tickets.
const secretRefSchema = z
  .string()
  .regex(/^(env|file|cmd):.+/s, {
    message: 'expected a secret reference "env:NAME", "file:PATH" or "cmd:COMMAND" — literal secrets are refused',
  });

const identifierSchema = z.string().min(1, { message: 'expected a non-empty identifier' }).max(63);

const targetSchema = z.strictObject({
  table: z.string().min(1, { message: 'expected a table name such as "public.people"' }),
  key: z.array(identifierSchema).min(1).optional(),
  columns: z.array(identifierSchema).min(1, { message: 'expected at least one column' }),
  format: z.enum(FORMAT_IDS),
});

/** The config file's shape; unknown fields are refused so typos surface. */
export const configFileSchema = z
  .strictObject({
    keys: z
      .array(z.strictObject({ id: keyIdSchema, secret: secretRefSchema }))
      .min(1, { message: 'expected at least one key; the first is the primary' }),
    targets: z.array(targetSchema).default([]),
    // Not "pg_rekey": PostgreSQL reserves the pg_ prefix for system schemas (42939).
    schema: identifierSchema
      .refine((s) => !s.startsWith('pg_'), { message: 'the "pg_" prefix is reserved for system schemas; use e.g. "pgrekey"' })
      .default('pgrekey'),
    migrationsDir: z.string().min(1).default('migrations'),
    rotationIntervalDays: z.number().int().positive().default(90),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.keys.forEach((key, index) => {
      if (seen.has(key.id)) {
        ctx.addIssue({ code: 'custom', path: ['keys', index, 'id'], message: `duplicate key id "${key.id}"` });
      }
      seen.add(key.id);
    });
    config.targets.forEach((target, index) => {
      const dupes = target.columns.filter((c, i) => target.columns.indexOf(c) !== i);
      if (dupes.length > 0) {
        ctx.addIssue({ code: 'custom', path: ['targets', index, 'columns'], message: `duplicate column "${dupes[0]}"` });
      }
    });
  });

/** The config file as parsed, defaults applied. */
export type ConfigFile = z.output<typeof configFileSchema>;
