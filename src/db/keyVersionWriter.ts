/**
 * The transaction-local setting that marks pg-rekey's own writes of key-version
 * hints. The guard triggers of a target keep a hint only when it is 'on': any
 * other write that changes an encrypted column or its key version — an
 * application's, including an ORM saving every column it loaded, or a restore —
 * leaves the hint NULL, "unknown, examine". Only pg-rekey, which has just
 * decrypted the value, can vouch for the key that encrypts it; a stale hint
 * could let `keys retire` retire a key that value still needs.
 *
 * Not a security boundary (any session may set it): it keeps honest writers
 * from leaving wrong hints, as DESIGN §3 asks of the key-version columns.
 */
export const KEY_VERSION_WRITER_SETTING = 'pgrekey.key_version_writer';

/** `SET LOCAL` that marks the current transaction as pg-rekey writing key versions. */
export const MARK_KEY_VERSION_WRITER = `SET LOCAL ${KEY_VERSION_WRITER_SETTING} = 'on'`;

/** True in a transaction that did not mark itself: the hint it writes is not trusted. */
export const NOT_KEY_VERSION_WRITER = `current_setting('${KEY_VERSION_WRITER_SETTING}', true) IS DISTINCT FROM 'on'`;
