/**
 * The per-target half of verify: classify every value of each page of rows,
 * count per column, check key-version hints against the key that actually
 * decrypted each value, and (with --fix-versions) queue compare-and-swap
 * repairs of the hints, flushed in small transactions on the pool — never on
 * the read connection, which stays read-only.
 */
import type pg from 'pg';
import type { Codec } from '../crypto/codec.js';
import { withTransaction } from '../db/withTransaction.js';
import type { RowKey } from '../rotation/batchSql.js';
import { withRetry } from '../rotation/retry.js';
import type { ReadRow } from '../rotation/readRows.js';
import { digestOf } from '../rotation/transformBatch.js';
import type { ResolvedTarget } from '../schema/resolveTarget.js';
import { classifyValue, type VerifyFailureReason } from './classifyValue.js';
import { fixVersionsSql, type VersionFix } from './verifySql.js';

/** How the key-version hints of a column compare with the keys that decrypted its values. */
export interface VersionCounts {
  /** The hint names the key that decrypted the value. */
  agree: number;
  /** The hint names another key: a stale or wrong hint. */
  mismatched: number;
  /** NULL hint on a decryptable value ("unknown, examine" — e.g. after an application write). */
  unknown: number;
  /** Hints set by --fix-versions (mismatched or unknown ones). */
  fixed: number;
  /** Mismatched hints among `fixed`. */
  mismatchFixed: number;
  /** Repairs skipped because the value changed after it was read (the next verify sees the new value). */
  fixLost: number;
}

/** Everything verify counts for one target column; never a value. */
export interface ColumnReport {
  target: string;
  column: string;
  /** Rows examined (each row has one value per column, NULL included). */
  rows: number;
  nulls: number;
  empty: number;
  /** Values per key id that actually decrypted them. */
  byKey: Record<string, number>;
  /** Values not in the target's format and with no known prefix (see classifyValue). */
  plaintext: number;
  /** Decodable `ENC_V1:` values. */
  legacy: number;
  /** Undecryptable values per reason class. */
  failed: Partial<Record<VerifyFailureReason, number>>;
  /** With --without: values only a withheld key decrypts, per key id. */
  needsWithheld: Record<string, number>;
  versions: VersionCounts;
}

/** A problem at one row, named by its key (never its value). */
export interface VerifyFinding {
  target: string;
  column: string;
  rowKey: Record<string, string>;
  reason: VerifyFailureReason | 'plaintext' | 'legacy' | 'version-mismatch';
  /** version-mismatch: the key the hint names, and the key that decrypted the value. */
  hintKey?: string;
  decryptedBy?: string;
  /** needs-withheld-key: the withheld key that decrypts it. */
  withheldKey?: string;
  /** version-mismatch with --fix-versions: whether the hint was repaired. */
  fixed?: boolean;
}

/** A bounded list of findings shared by all targets: memory must not grow with the table. */
export interface FindingSink {
  readonly max: number;
  readonly list: VerifyFinding[];
  /** Findings beyond `max`, counted only. */
  dropped: number;
}

/** What a TargetVerifier needs besides the target. */
export interface TargetVerifierOptions {
  codec: Codec;
  without: readonly string[];
  /** Registered key id → key version. */
  versionOf: ReadonlyMap<string, number>;
  /** Key version → registered key id. */
  keyOf: ReadonlyMap<number, string>;
  findings: FindingSink;
  /** Pool for --fix-versions repairs; null when not repairing. */
  fixPool: pg.Pool | null;
  /** Repairs per transaction (default 500). */
  fixBatch?: number;
}

interface PendingFix extends VersionFix {
  column: number;
  finding: VerifyFinding | null;
  mismatch: boolean;
}

const keyString = (key: RowKey): string => JSON.stringify(key);

/** Classifies and counts one target's values, page by page; call finish() after the last page. */
export class TargetVerifier {
  /** One report per encrypted column, in target order. */
  readonly reports: ColumnReport[];
  readonly #target: ResolvedTarget;
  readonly #options: TargetVerifierOptions;
  readonly #classify: { without?: readonly string[] };
  #pending: PendingFix[] = [];

  /** Starts empty reports for each column of `target`. */
  constructor(target: ResolvedTarget, options: TargetVerifierOptions) {
    this.#target = target;
    this.#options = options;
    this.#classify = options.without.length > 0 ? { without: options.without } : {};
    this.reports = target.columns.map((c) => ({
      target: target.name,
      column: c.name,
      rows: 0,
      nulls: 0,
      empty: 0,
      byKey: {},
      plaintext: 0,
      legacy: 0,
      failed: {},
      needsWithheld: {},
      versions: { agree: 0, mismatched: 0, unknown: 0, fixed: 0, mismatchFixed: 0, fixLost: 0 },
    }));
  }

  /** Handles one page of rows (the OnRows callback of readTarget). */
  async onRows(rows: readonly ReadRow[]): Promise<void> {
    const { codec, versionOf, keyOf } = this.#options;
    const fixing = this.#options.fixPool !== null;
    for (const row of rows) {
      for (let c = 0; c < this.reports.length; c++) {
        const report = this.reports[c]!;
        report.rows++;
        const value = row.values[c] ?? null;
        const cls = classifyValue(codec, value, this.#classify);
        switch (cls.kind) {
          case 'null':
            report.nulls++;
            break;
          case 'empty':
            report.empty++;
            break;
          case 'plaintext':
          case 'legacy':
            report[cls.kind]++;
            this.#find(row.key, c, { reason: cls.kind });
            break;
          case 'failed':
            report.failed[cls.reason] = (report.failed[cls.reason] ?? 0) + 1;
            if (cls.withheldKeyId) report.needsWithheld[cls.withheldKeyId] = (report.needsWithheld[cls.withheldKeyId] ?? 0) + 1;
            this.#find(row.key, c, cls.withheldKeyId ? { reason: cls.reason, withheldKey: cls.withheldKeyId } : { reason: cls.reason });
            break;
          case 'ok': {
            report.byKey[cls.keyId] = (report.byKey[cls.keyId] ?? 0) + 1;
            const expected = versionOf.get(cls.keyId);
            const hint = row.versions[c] ?? null;
            // A key configured but not registered has no version to compare with.
            if (expected === undefined) break;
            if (hint === expected) {
              report.versions.agree++;
              break;
            }
            let finding: VerifyFinding | null = null;
            if (hint === null) {
              report.versions.unknown++;
            } else {
              report.versions.mismatched++;
              finding = this.#find(row.key, c, {
                reason: 'version-mismatch',
                hintKey: keyOf.get(hint) ?? `version ${hint}`,
                decryptedBy: cls.keyId,
                ...(fixing ? { fixed: false } : {}),
              });
            }
            if (fixing) {
              this.#pending.push({ key: row.key, column: c, version: expected, readDigest: digestOf(value!), finding, mismatch: hint !== null });
            }
            break;
          }
        }
      }
    }
    if (this.#pending.length >= (this.#options.fixBatch ?? 500)) await this.#flush();
  }

  /** Flushes queued repairs. */
  async finish(): Promise<void> {
    await this.#flush();
  }

  /** Problem values: failures, plaintext, legacy, and mismatched hints not repaired. */
  get problems(): number {
    return this.reports.reduce(
      (n, r) =>
        n +
        r.plaintext +
        r.legacy +
        Object.values(r.failed).reduce((a, b) => a + (b ?? 0), 0) +
        (r.versions.mismatched - r.versions.mismatchFixed),
      0,
    );
  }

  #find(key: RowKey, column: number, rest: Omit<VerifyFinding, 'target' | 'column' | 'rowKey'>): VerifyFinding | null {
    const sink = this.#options.findings;
    if (sink.list.length >= sink.max) {
      sink.dropped++;
      return null;
    }
    const finding: VerifyFinding = {
      target: this.#target.name,
      column: this.#target.columns[column]!.name,
      rowKey: Object.fromEntries(this.#target.key.map((k, i) => [k.name, key[i]!])),
      ...rest,
    };
    sink.list.push(finding);
    return finding;
  }

  async #flush(): Promise<void> {
    const pool = this.#options.fixPool;
    if (!pool || this.#pending.length === 0) return;
    const pending = this.#pending;
    this.#pending = [];
    for (let c = 0; c < this.reports.length; c++) {
      const fixes = pending.filter((f) => f.column === c);
      if (fixes.length === 0) continue;
      // lock_timeout: a row an application holds locked is waited for briefly,
      // then the batch is retried rather than queueing behind a long transaction.
      const returned = await withRetry(() =>
        withTransaction(pool, async (client) => (await client.query<Record<string, string>>(fixVersionsSql(this.#target, c, fixes))).rows, {
          lockTimeoutMs: 5_000,
          statementTimeoutMs: 60_000,
          writesKeyVersions: true,
        }),
      );
      const set = new Set(returned.map((r) => keyString(this.#target.key.map((_, i) => r[`k${i}`]!))));
      const versions = this.reports[c]!.versions;
      for (const fix of fixes) {
        if (set.has(keyString(fix.key))) {
          versions.fixed++;
          if (fix.mismatch) versions.mismatchFixed++;
          if (fix.finding) fix.finding.fixed = true;
        } else {
          versions.fixLost++;
        }
      }
    }
  }
}
