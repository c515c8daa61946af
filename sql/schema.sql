-- Schema pgrekey: normalised by pg-rekey (npm run schema:dump); do not edit.

CREATE SCHEMA pgrekey;

CREATE SEQUENCE pgrekey.pgrekey_migrations_id_seq AS integer;

CREATE TABLE pgrekey.failures (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    run_id bigint NOT NULL,
    target text NOT NULL,
    column_name text NOT NULL,
    row_key jsonb NOT NULL,
    reason text NOT NULL,
    occurred_at timestamp with time zone DEFAULT now() NOT NULL
);

CREATE TABLE pgrekey.keys (
    version smallint GENERATED ALWAYS AS IDENTITY NOT NULL,
    key_id text NOT NULL,
    fingerprint text NOT NULL,
    state text DEFAULT 'active'::text NOT NULL,
    is_primary boolean DEFAULT false NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    promoted_at timestamp with time zone,
    retired_at timestamp with time zone
);

CREATE TABLE pgrekey.pgrekey_migrations (
    id integer DEFAULT nextval('pgrekey.pgrekey_migrations_id_seq'::regclass) NOT NULL,
    name character varying(255) NOT NULL,
    run_on timestamp without time zone NOT NULL
);

CREATE TABLE pgrekey.ranges (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    run_id bigint NOT NULL,
    target text NOT NULL,
    ordinal integer NOT NULL,
    lower_bound jsonb,
    upper_bound jsonb,
    checkpoint jsonb,
    status text DEFAULT 'pending'::text NOT NULL,
    estimated_rows bigint DEFAULT 0 NOT NULL,
    lease_owner text,
    lease_token uuid,
    lease_expires_at timestamp with time zone,
    rows_examined bigint DEFAULT 0 NOT NULL,
    rows_changed bigint DEFAULT 0 NOT NULL,
    rows_skipped bigint DEFAULT 0 NOT NULL,
    rows_failed bigint DEFAULT 0 NOT NULL,
    rows_conflicted bigint DEFAULT 0 NOT NULL,
    changed_by_source jsonb DEFAULT '{}'::jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    recheck jsonb DEFAULT '[]'::jsonb NOT NULL,
    batches_committed integer DEFAULT 0 NOT NULL
);

CREATE TABLE pgrekey.run_chain (
    singleton boolean DEFAULT true NOT NULL,
    last_seq bigint NOT NULL,
    last_hash text NOT NULL
);

CREATE TABLE pgrekey.runs (
    id bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
    kind text NOT NULL,
    trigger text DEFAULT 'manual'::text NOT NULL,
    reason text,
    actor_db_user text DEFAULT CURRENT_USER NOT NULL,
    actor_os_user text,
    actor_host text,
    source_keys text[] DEFAULT '{}'::text[] NOT NULL,
    target_key text,
    targets text[] DEFAULT '{}'::text[] NOT NULL,
    options jsonb DEFAULT '{}'::jsonb NOT NULL,
    started_at timestamp with time zone DEFAULT now() NOT NULL,
    finished_at timestamp with time zone,
    status text DEFAULT 'running'::text NOT NULL,
    rows_examined bigint DEFAULT 0 NOT NULL,
    rows_changed bigint DEFAULT 0 NOT NULL,
    rows_skipped bigint DEFAULT 0 NOT NULL,
    rows_failed bigint DEFAULT 0 NOT NULL,
    summary jsonb DEFAULT '{}'::jsonb NOT NULL,
    chain_seq bigint,
    row_hash text
);

ALTER TABLE ONLY pgrekey.failures ADD CONSTRAINT failures_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgrekey.failures ADD CONSTRAINT failures_run_id_fkey FOREIGN KEY (run_id) REFERENCES pgrekey.runs(id);

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_key_id_key UNIQUE (key_id);

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_pkey PRIMARY KEY (version);

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_fingerprint_check CHECK ((fingerprint ~ '^[0-9a-f]{32}$'::text));

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_key_id_check CHECK ((key_id ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}$'::text));

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_primary_is_active CHECK ((NOT (is_primary AND (state = 'retired'::text))));

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_retired_has_time CHECK (((state = 'retired'::text) = (retired_at IS NOT NULL)));

ALTER TABLE ONLY pgrekey.keys ADD CONSTRAINT keys_state_check CHECK ((state = ANY (ARRAY['active'::text, 'retired'::text])));

ALTER TABLE ONLY pgrekey.pgrekey_migrations ADD CONSTRAINT pgrekey_migrations_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_run_id_target_ordinal_key UNIQUE (run_id, target, ordinal);

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_run_id_fkey FOREIGN KEY (run_id) REFERENCES pgrekey.runs(id);

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_recheck_is_array CHECK ((jsonb_typeof(recheck) = 'array'::text));

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'done'::text])));

ALTER TABLE ONLY pgrekey.run_chain ADD CONSTRAINT run_chain_pkey PRIMARY KEY (singleton);

ALTER TABLE ONLY pgrekey.run_chain ADD CONSTRAINT run_chain_singleton_check CHECK (singleton);

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_chain_seq_unique UNIQUE (chain_seq);

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_pkey PRIMARY KEY (id);

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_chained_when_finished CHECK (
CASE
    WHEN (status = ANY (ARRAY['running'::text, 'stopped'::text])) THEN ((chain_seq IS NULL) AND (row_hash IS NULL))
    ELSE ((chain_seq IS NOT NULL) AND (row_hash IS NOT NULL))
END);

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_finished_has_time CHECK (((status = 'running'::text) = (finished_at IS NULL)));

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_kind_check CHECK ((kind = ANY (ARRAY['rotate'::text, 'verify'::text, 'promote'::text, 'retire'::text, 'add'::text])));

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_status_check CHECK ((status = ANY (ARRAY['running'::text, 'succeeded'::text, 'failed'::text, 'stopped'::text, 'aborted'::text])));

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_trigger_check CHECK ((trigger = ANY (ARRAY['manual'::text, 'scheduled'::text, 'emergency'::text])));

CREATE INDEX failures_run ON pgrekey.failures USING btree (run_id, target, column_name);

CREATE UNIQUE INDEX keys_one_primary ON pgrekey.keys USING btree ((true)) WHERE is_primary;

CREATE INDEX ranges_claimable ON pgrekey.ranges USING btree (run_id, status, lease_expires_at);

CREATE UNIQUE INDEX runs_one_open_rotation ON pgrekey.runs USING btree ((true)) WHERE ((kind = 'rotate'::text) AND (status = ANY (ARRAY['running'::text, 'stopped'::text])));

CREATE INDEX runs_started_at ON pgrekey.runs USING btree (started_at);

CREATE OR REPLACE FUNCTION pgrekey.add_counts(total jsonb, delta jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION pgrekey.refuse_retiring_referenced_key()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
DECLARE
  ref record;
  referenced boolean;
BEGIN
  FOR ref IN
    SELECT c.conrelid::regclass AS tbl, a.attname AS col
      FROM pg_catalog.pg_constraint c
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
     WHERE c.contype = 'f' AND c.confrelid = TG_RELID
  LOOP
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s WHERE %I = $1)', ref.tbl, ref.col)
      INTO referenced USING OLD.version;
    IF referenced THEN
      RAISE EXCEPTION 'key % is still referenced by %.%', OLD.key_id, ref.tbl, ref.col
        USING ERRCODE = 'foreign_key_violation';
    END IF;
  END LOOP;
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION pgrekey.reset_key_version()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
BEGIN
  NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], NULL));
  RETURN NEW;
END
$function$;

CREATE OR REPLACE FUNCTION pgrekey.run_canonical(r pgrekey.runs)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  SELECT jsonb_build_array(
    r.chain_seq, r.id, r.kind, r.trigger, r.reason, r.actor_db_user, r.actor_os_user, r.actor_host,
    to_jsonb(r.source_keys), r.target_key, to_jsonb(r.targets), r.options,
    to_char(r.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    to_char(r.finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
    r.status, r.rows_examined, r.rows_changed, r.rows_skipped, r.rows_failed, r.summary
  )::text
$function$;

CREATE OR REPLACE FUNCTION pgrekey.run_hash(r pgrekey.runs, previous_hash text)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pgrekey'
AS $function$
  SELECT encode(sha256(convert_to(run_canonical(r) || E'\n' || previous_hash, 'UTF8')), 'hex')
$function$;

CREATE OR REPLACE FUNCTION pgrekey.runs_append_only()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pgrekey'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION pgrekey.runs_refuse_truncate()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
  RAISE EXCEPTION 'the audit trail (runs) is append-only: TRUNCATE refused' USING ERRCODE = '55000';
END
$function$;

CREATE TRIGGER keys_refuse_retiring_referenced BEFORE UPDATE OF state ON pgrekey.keys FOR EACH ROW WHEN (((new.state = 'retired'::text) AND (old.state <> 'retired'::text))) EXECUTE FUNCTION pgrekey.refuse_retiring_referenced_key();

CREATE TRIGGER runs_append_only BEFORE INSERT OR DELETE OR UPDATE ON pgrekey.runs FOR EACH ROW EXECUTE FUNCTION pgrekey.runs_append_only();

CREATE TRIGGER runs_refuse_truncate BEFORE TRUNCATE ON pgrekey.runs FOR EACH STATEMENT EXECUTE FUNCTION pgrekey.runs_refuse_truncate();
