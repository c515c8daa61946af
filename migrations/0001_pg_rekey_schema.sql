-- Up Migration
-- pg-rekey's own schema. The runner sets search_path to the configured schema
-- (default pgrekey: the pg_ prefix is reserved), so the names below are created there unqualified.

-- The key registry: fingerprints only, never key material. `version` is what
-- target key-version columns reference (smallint keeps those columns small).
CREATE TABLE keys (
  version      smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  key_id       text NOT NULL UNIQUE CHECK (key_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'),
  fingerprint  text NOT NULL CHECK (fingerprint ~ '^[0-9a-f]{32}$'),
  state        text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'retired')),
  is_primary   boolean NOT NULL DEFAULT false,
  created_at   timestamptz NOT NULL DEFAULT now(),
  promoted_at  timestamptz,
  retired_at   timestamptz,
  CONSTRAINT keys_primary_is_active CHECK (NOT (is_primary AND state = 'retired')),
  CONSTRAINT keys_retired_has_time CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
-- At most one primary key, enforced by the database rather than by our code.
CREATE UNIQUE INDEX keys_one_primary ON keys ((true)) WHERE is_primary;

-- The audit trail: one row per rotate, verify, promote, retire or key registration.
CREATE TABLE runs (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  kind           text NOT NULL CHECK (kind IN ('rotate', 'verify', 'promote', 'retire', 'add')),
  trigger        text NOT NULL DEFAULT 'manual' CHECK (trigger IN ('manual', 'scheduled', 'emergency')),
  reason         text,
  actor_db_user  text NOT NULL DEFAULT current_user,
  actor_os_user  text,
  actor_host     text,
  source_keys    text[] NOT NULL DEFAULT '{}',
  target_key     text,
  targets        text[] NOT NULL DEFAULT '{}',
  options        jsonb NOT NULL DEFAULT '{}',
  started_at     timestamptz NOT NULL DEFAULT now(),
  finished_at    timestamptz,
  status         text NOT NULL DEFAULT 'running'
                 CHECK (status IN ('running', 'succeeded', 'failed', 'stopped', 'aborted')),
  rows_examined  bigint NOT NULL DEFAULT 0,
  rows_changed   bigint NOT NULL DEFAULT 0,
  rows_skipped   bigint NOT NULL DEFAULT 0,
  rows_failed    bigint NOT NULL DEFAULT 0,
  summary        jsonb NOT NULL DEFAULT '{}',
  CONSTRAINT runs_finished_has_time CHECK ((status = 'running') = (finished_at IS NULL))
);
-- One unfinished rotation at a time: every `pg-rekey rotate` joins it or is refused.
CREATE UNIQUE INDEX runs_one_open_rotation ON runs ((true)) WHERE kind = 'rotate' AND status IN ('running', 'stopped');
CREATE INDEX runs_started_at ON runs (started_at);

-- A rotation's slices of each target's key space. `checkpoint` is the last key
-- done, committed in the same transaction as the batch it covers, so a crash
-- loses at most one uncommitted batch. Keys are JSON arrays of the key columns'
-- text forms, compared in SQL after casting back to the columns' types.
CREATE TABLE ranges (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id            bigint NOT NULL REFERENCES runs (id),
  target            text NOT NULL,
  ordinal           integer NOT NULL,
  lower_bound       jsonb,            -- exclusive; NULL = from the start of the table
  upper_bound       jsonb,            -- inclusive; NULL = to the end of the table
  checkpoint        jsonb,            -- last key done; NULL = nothing done yet
  status            text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'running', 'done')),
  estimated_rows    bigint NOT NULL DEFAULT 0,
  lease_owner       text,
  lease_token       uuid,
  lease_expires_at  timestamptz,
  rows_examined     bigint NOT NULL DEFAULT 0,
  rows_changed      bigint NOT NULL DEFAULT 0,
  rows_skipped      bigint NOT NULL DEFAULT 0,
  rows_failed       bigint NOT NULL DEFAULT 0,
  rows_conflicted   bigint NOT NULL DEFAULT 0,
  -- {"email": {"2025q4": 120, "(null)": 3}}: values changed per column and source key
  changed_by_source jsonb NOT NULL DEFAULT '{}',
  updated_at        timestamptz NOT NULL DEFAULT now(),
  UNIQUE (run_id, target, ordinal)
);
CREATE INDEX ranges_claimable ON ranges (run_id, status, lease_expires_at);

-- Rows a run could not rotate: where and why, never the value.
CREATE TABLE failures (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id       bigint NOT NULL REFERENCES runs (id),
  target       text NOT NULL,
  column_name  text NOT NULL,
  row_key      jsonb NOT NULL,
  reason       text NOT NULL,
  occurred_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX failures_run ON failures (run_id, target, column_name);

-- Adds the per-source counters of one batch into a range's running totals
-- ({"col": {"key": n}} + {"col": {"key": m}}), inside the checkpoint UPDATE.
CREATE FUNCTION add_counts(total jsonb, delta jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(jsonb_object_agg(col, counts), '{}'::jsonb)
  FROM (
    SELECT col, jsonb_object_agg(src, n) AS counts
    FROM (
      SELECT c.key AS col, s.key AS src, sum(s.value::bigint) AS n
      FROM (SELECT * FROM jsonb_each(total) UNION ALL SELECT * FROM jsonb_each(delta)) AS c,
           jsonb_each_text(c.value) AS s
      GROUP BY c.key, s.key
    ) AS per_source
    GROUP BY col
  ) AS per_column
$$;

-- Down Migration
DROP FUNCTION add_counts(jsonb, jsonb);
DROP TABLE failures;
DROP TABLE ranges;
DROP TABLE runs;
DROP TABLE keys;
