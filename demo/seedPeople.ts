/**
 * The demo's application data: a Django-style `people` table whose `email` and
 * `mobno` hold `django-fernet-v1` values (FERNET_V1: + base64url(Fernet token))
 * under the application's current SECRET_KEY, as the Django app writes them —
 * with a few NULLs and one corrupted value, as real tables have.
 */
import pg from 'pg';
import { createCodec } from '../src/index.js';

/** What was seeded, for the demo's narration and its checks. */
export interface SeededPeople {
  readonly rows: number;
  readonly nullEmails: number;
  readonly nullMobnos: number;
  /** id of the row whose email was corrupted. */
  readonly corruptedId: number;
  /** A few plaintexts by id, to show that rotation preserves them. */
  readonly samples: ReadonlyMap<number, { email: string; mobno: string | null }>;
}

const BATCH = 1000;
const FIRST_NAMES = ['Asha', 'Ben', 'Chen', 'Dara', 'Elif', 'Farid', 'Grace', 'Hugo', 'Ines', 'Jon', 'Kemi', 'Luca'];
const LAST_NAMES = ['Okafor', 'Smith', 'Nakamura', 'Silva', 'Kowalski', 'Haddad', 'Murphy', 'Novak', 'Rossi', 'Ng'];

/** A value the app would decrypt fine, with one character in the middle of the token changed. */
function corrupt(stored: string): string {
  const at = Math.floor(stored.length / 2);
  const replacement = stored[at] === 'A' ? 'B' : 'A';
  return stored.slice(0, at) + replacement + stored.slice(at + 1);
}

/**
 * Creates `public.people` in the database at `url` and fills it with `rows`
 * rows encrypted under `secretKey` (the old Django SECRET_KEY, id `keyId`).
 */
export async function seedPeople(url: string, keyId: string, secretKey: string, rows: number): Promise<SeededPeople> {
  const codec = await createCodec({
    format: 'django-fernet-v1',
    keys: [{ id: keyId, secret: 'env:DEMO_OLD_SECRET_KEY' }],
    env: { DEMO_OLD_SECRET_KEY: secretKey },
  });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const now = Math.floor(Date.now() / 1000);
  const corruptedId = Math.floor(rows * 0.4231) + 1;
  const samples = new Map<number, { email: string; mobno: string | null }>();
  let nullEmails = 0;
  let nullMobnos = 0;
  try {
    await client.query(`
      CREATE TABLE public.people (
        id    bigint PRIMARY KEY,
        name  text   NOT NULL,
        email text,
        mobno text
      )`);
    for (let start = 1; start <= rows; start += BATCH) {
      const ids: number[] = [];
      const names: string[] = [];
      const emails: (string | null)[] = [];
      const mobnos: (string | null)[] = [];
      for (let id = start; id < Math.min(start + BATCH, rows + 1); id++) {
        const first = FIRST_NAMES[id % FIRST_NAMES.length]!;
        const last = LAST_NAMES[(id * 7) % LAST_NAMES.length]!;
        const email = `${first}.${last}.${id}@example.com`.toLowerCase();
        const mobno = `+44 7700 ${String(900000 + (id % 100000)).padStart(6, '0')}`;
        // Written at various times over the last year; rotation keeps each Fernet timestamp.
        const timestamp = now - ((id * 7919) % (365 * 86_400));
        // A few NULLs, as when a user never gave a mobile number or an email.
        const emailValue = id % 1999 === 0 ? null : codec.encrypt(email, { timestamp });
        const mobnoValue = id % 7 === 0 ? null : codec.encrypt(mobno, { timestamp });
        if (emailValue === null) nullEmails++;
        if (mobnoValue === null) nullMobnos++;
        if ((id === 1 || id === rows) && emailValue !== null) samples.set(id, { email, mobno: mobnoValue === null ? null : mobno });
        ids.push(id);
        names.push(`${first} ${last}`);
        emails.push(id === corruptedId && emailValue !== null ? corrupt(emailValue) : emailValue);
        mobnos.push(mobnoValue);
      }
      await client.query(
        'INSERT INTO public.people (id, name, email, mobno) SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])',
        [ids, names, emails, mobnos],
      );
    }
    await client.query('ANALYZE public.people');
  } finally {
    await client.end();
  }
  return { rows, nullEmails, nullMobnos, corruptedId, samples };
}

/** Decrypts the sample rows' email/mobno with `secretKey` (key `keyId`) to show the plaintext survived. */
export async function readSamples(
  url: string,
  keyId: string,
  secretKey: string,
  ids: readonly number[],
): Promise<{ id: number; email: string | null; mobno: string | null; prefix: string }[]> {
  const codec = await createCodec({
    format: 'django-fernet-v1',
    keys: [{ id: keyId, secret: 'env:DEMO_NEW_SECRET_KEY' }],
    env: { DEMO_NEW_SECRET_KEY: secretKey },
  });
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; email: string | null; mobno: string | null }>(
      'SELECT id, email, mobno FROM public.people WHERE id = ANY($1::bigint[]) ORDER BY id',
      [ids],
    );
    return rows.map((r) => ({
      id: Number(r.id),
      email: r.email === null ? null : codec.decrypt(r.email).plaintext,
      mobno: r.mobno === null ? null : codec.decrypt(r.mobno).plaintext,
      prefix: r.email === null ? '' : `${r.email.slice(0, 24)}…`,
    }));
  } finally {
    await client.end();
  }
}
