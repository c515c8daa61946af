import { createHash } from 'node:crypto';
import { quoteIdent } from '../db/quote.js';
import { sql, type Sql } from '../db/sql.js';
import type { Queryable } from '../db/withTransaction.js';

/** The hash the first link is chained to (migration 0003 seeds the chain head with it). */
export const GENESIS_HASH = '0'.repeat(64);

/** What is wrong with one place in the chain. */
export interface ChainProblem {
  /** 'edited': a run no longer matches its hash (a field changed, or it was moved in the order);
   *  'missing': links are absent (deleted); 'unlinked': a finished run that never joined the chain;
   *  'head': the chain head disagrees with the last link (the newest links were deleted). */
  kind: 'edited' | 'missing' | 'unlinked' | 'head';
  /** The run where the problem shows (null for the chain head). */
  runId: number | null;
  /** Its position in the chain, if it has one. */
  chainSeq: number | null;
  message: string;
}

/** The outcome of recomputing the chain. */
export interface ChainVerification {
  ok: boolean;
  /** Finished runs checked. */
  links: number;
  /** The chain head as stored: record it elsewhere to anchor the chain against a rewrite of all of it. */
  head: { seq: number; hash: string };
  /** In chain order; the first is the first bad row. */
  problems: ChainProblem[];
}

interface LinkRow {
  id: number;
  chainSeq: number | null;
  status: string;
  rowHash: string | null;
  canonical: string;
}

// Every run that is or should be a link: finished ones, and any carrying a
// chain position (an open status on a link means its status was edited).
// The canonical text comes from the same SQL function the guard trigger
// hashes, so the two cannot drift; the hash itself is recomputed here.
function selectLinksSql(schema: string): Sql {
  const s = quoteIdent(schema);
  return sql(
    `SELECT r.id::float8 AS id, r.chain_seq::float8 AS "chainSeq", r.status, r.row_hash AS "rowHash",
            ${s}.run_canonical(r) AS canonical
       FROM ${s}.runs AS r
      WHERE r.chain_seq IS NOT NULL OR r.status NOT IN ('running', 'stopped')
      ORDER BY r.chain_seq NULLS LAST, r.id`,
  );
}

function selectHeadSql(schema: string): Sql {
  return sql(`SELECT last_seq::float8 AS seq, last_hash AS hash FROM ${quoteIdent(schema)}.run_chain`);
}

/** sha256 over a run's canonical text, a newline and the previous link's hash, as run_hash() in SQL. */
export function linkHash(canonical: string, previousHash: string): string {
  return createHash('sha256').update(`${canonical}\n${previousHash}`, 'utf8').digest('hex');
}

/**
 * Recomputes the runs hash chain (read-only) and reports every place where it
 * breaks: a run edited or moved, links deleted from the middle or the end, a
 * finished run outside the chain. Each link is checked against the stored hash
 * of the one before it, so one edited run is reported once, not with all its successors.
 */
export async function verifyRunChain(db: Queryable, schema: string): Promise<ChainVerification> {
  const links = (await db.query<LinkRow>(selectLinksSql(schema))).rows;
  const headRow = (await db.query<{ seq: number; hash: string }>(selectHeadSql(schema))).rows[0];
  const head = headRow ?? { seq: 0, hash: GENESIS_HASH };
  const problems: ChainProblem[] = [];
  let previous = GENESIS_HASH;
  let expectedSeq = 1;
  for (const link of links) {
    if (link.chainSeq === null) {
      problems.push({
        kind: 'unlinked',
        runId: link.id,
        chainSeq: null,
        message: `run ${link.id} is ${link.status} but not in the chain (written with the guard trigger disabled?)`,
      });
      continue;
    }
    if (link.chainSeq > expectedSeq) {
      const range = link.chainSeq - 1 === expectedSeq ? `link ${expectedSeq} is` : `links ${expectedSeq}–${link.chainSeq - 1} are`;
      problems.push({
        kind: 'missing',
        runId: link.id,
        chainSeq: link.chainSeq,
        message: `${range} missing before run ${link.id} (link ${link.chainSeq}): deleted`,
      });
      // This link was chained to a hash that is gone; it cannot be checked, the gap is the finding.
    } else if (linkHash(link.canonical, previous) !== link.rowHash) {
      problems.push({
        kind: 'edited',
        runId: link.id,
        chainSeq: link.chainSeq,
        message: `run ${link.id} (link ${link.chainSeq}) does not match its hash: edited, or moved in the order`,
      });
    }
    previous = link.rowHash ?? '';
    expectedSeq = link.chainSeq + 1;
  }
  const lastSeq = expectedSeq - 1;
  if (head.seq !== lastSeq || (lastSeq > 0 && head.hash !== previous)) {
    problems.push({
      kind: 'head',
      runId: null,
      chainSeq: head.seq,
      message:
        head.seq > lastSeq
          ? `${head.seq - lastSeq === 1 ? `the newest link (${head.seq}) is` : `the newest links (${lastSeq + 1}–${head.seq}) are`} missing: deleted`
          : `the chain head (link ${head.seq}) does not match the last link (${lastSeq}): edited`,
    });
  }
  return { ok: problems.length === 0, links: links.length, head, problems };
}
