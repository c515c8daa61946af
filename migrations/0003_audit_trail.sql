-- Up Migration
-- The audit trail (issue 5 §3): finished runs are append-only and hash-chained.
-- Like 0001, created unqualified in the configured schema (search_path).
--
-- A run is "open" while running or stopped (a stopped rotation is resumed by
-- the next `pg-rekey rotate`): the rotator updates it as it goes. When its
-- status becomes final (succeeded, failed, aborted) it joins the chain: it gets
-- the next chain_seq and a row_hash over its fields and the previous link's
-- hash, and from then on the database refuses UPDATE and DELETE of it. Editing
-- a field breaks its hash, deleting a link leaves a gap (or a chain head that
-- points past the last row), swapping two rows' order breaks both hashes:
-- `pg-rekey history --verify` recomputes the chain and names the first bad row.

ALTER TABLE runs ADD COLUMN chain_seq bigint, ADD COLUMN row_hash text;
ALTER TABLE runs ADD CONSTRAINT runs_chain_seq_unique UNIQUE (chain_seq);

-- The chain head: the last link's position and hash. Its one row is locked
-- (FOR UPDATE, released at commit) by every append, which serialises appends
-- so chain_seq order is commit order; it also lets `history --verify` notice
-- that the newest links were deleted, which no remaining row could show.
CREATE TABLE run_chain (
  singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_seq   bigint NOT NULL,
  last_hash  text NOT NULL
);
INSERT INTO run_chain (last_seq, last_hash) VALUES (0, repeat('0', 64));

-- The canonical text of a run that its hash covers: a JSON array of every
-- column but row_hash, in a fixed order. Timestamps are rendered in UTC
-- explicitly (to_json would use the session's TimeZone, which differs between
-- hosts); jsonb and bigint text forms do not depend on session settings.
-- `pg-rekey history --verify` hashes this same text, so they cannot drift.
CREATE FUNCTION run_canonical(r runs) RETURNS text
LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_array(
    r.chain_seq, r.id, r.kind, r.trigger, r.reason, r.actor_db_user, r.actor_os_user, r.actor_host,
    to_jsonb(r.source_keys), r.target_key, to_jsonb(r.targets), r.options,
    to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    r.status, r.rows_examined, r.rows_changed, r.rows_skipped, r.rows_failed, r.summary
  )::text
$$;

-- A link's hash: sha256 over the canonical text, a newline and the previous
-- link's hash (hex). Built-in sha256(bytea) (PostgreSQL 11+): pgcrypto may
-- not be installed and we do not require it.
CREATE FUNCTION run_hash(r runs, previous_hash text) RETURNS text
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT encode(sha256(convert_to(run_canonical(r) || E'\n' || previous_hash, 'UTF8')), 'hex')
$$;

-- Links the runs already finished before this migration, in finish order, so
-- the chain covers the whole trail (the guard trigger does not exist yet).
DO $$
DECLARE
  r runs;
  seq bigint := 0;
  previous text := repeat('0', 64);
BEGIN
  FOR r IN SELECT * FROM runs WHERE status NOT IN ('running', 'stopped') ORDER BY finished_at, id LOOP
    seq := seq + 1;
    r.chain_seq := seq;
    previous := run_hash(r, previous);
    UPDATE runs SET chain_seq = seq, row_hash = previous WHERE id = r.id;
  END LOOP;
  UPDATE run_chain SET last_seq = seq, last_hash = previous;
END
$$;

ALTER TABLE runs ADD CONSTRAINT runs_chained_when_finished CHECK (
  CASE WHEN status IN ('running', 'stopped') THEN chain_seq IS NULL AND row_hash IS NULL
       ELSE chain_seq IS NOT NULL AND row_hash IS NOT NULL END);

-- The guard. BEFORE ROW, so the hash covers the row exactly as stored. The
-- search_path is pinned to this schema because the rotator's and the CLI's
-- sessions qualify names instead of setting it. 55000 (object not in
-- prerequisite state) marks the refusals: a caller's bug, not a transient error.
CREATE FUNCTION runs_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
  head run_chain;
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status IN ('running', 'stopped') THEN
      RETURN OLD;
    END IF;
    RAISE EXCEPTION 'run % is finished (%): the audit trail is append-only', OLD.id, OLD.status
      USING ERRCODE = '55000', HINT = 'finished runs cannot be deleted';
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status NOT IN ('running', 'stopped') THEN
    RAISE EXCEPTION 'run % is finished (%): the audit trail is append-only', OLD.id, OLD.status
      USING ERRCODE = '55000', HINT = 'finished runs cannot be changed; record a new run instead';
  END IF;
  IF NEW.status IN ('running', 'stopped') THEN
    -- Open runs are not links yet, whatever the caller wrote.
    NEW.chain_seq := NULL;
    NEW.row_hash := NULL;
    RETURN NEW;
  END IF;
  -- Held until commit: the next append waits, so links never interleave.
  SELECT * INTO STRICT head FROM run_chain FOR UPDATE;
  NEW.chain_seq := head.last_seq + 1;
  NEW.row_hash := run_hash(NEW, head.last_hash);
  UPDATE run_chain SET last_seq = NEW.chain_seq, last_hash = NEW.row_hash;
  RETURN NEW;
END
$$;

CREATE TRIGGER runs_append_only
  BEFORE INSERT OR UPDATE OR DELETE ON runs
  FOR EACH ROW EXECUTE FUNCTION runs_append_only();

-- TRUNCATE fires no row trigger; refuse it outright (ranges and failures
-- reference runs, so it would need CASCADE anyway).
CREATE FUNCTION runs_refuse_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit trail (runs) is append-only: TRUNCATE refused' USING ERRCODE = '55000';
END
$$;

CREATE TRIGGER runs_refuse_truncate
  BEFORE TRUNCATE ON runs
  FOR EACH STATEMENT EXECUTE FUNCTION runs_refuse_truncate();

-- Down Migration
DROP TRIGGER runs_refuse_truncate ON runs;
DROP FUNCTION runs_refuse_truncate();
DROP TRIGGER runs_append_only ON runs;
DROP FUNCTION runs_append_only();
ALTER TABLE runs DROP CONSTRAINT runs_chained_when_finished;
DROP FUNCTION run_hash(runs, text);
DROP FUNCTION run_canonical(runs);
DROP TABLE run_chain;
ALTER TABLE runs DROP CONSTRAINT runs_chain_seq_unique;
ALTER TABLE runs DROP COLUMN row_hash, DROP COLUMN chain_seq;
