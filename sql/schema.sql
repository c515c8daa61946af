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
    updated_at timestamp with time zone DEFAULT now() NOT NULL
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
    summary jsonb DEFAULT '{}'::jsonb NOT NULL
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

ALTER TABLE ONLY pgrekey.ranges ADD CONSTRAINT ranges_status_check CHECK ((status = ANY (ARRAY['pending'::text, 'running'::text, 'done'::text])));

ALTER TABLE ONLY pgrekey.runs ADD CONSTRAINT runs_pkey PRIMARY KEY (id);

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
AS $function$
BEGIN
  NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], NULL));
  RETURN NEW;
END
$function$;

CREATE TRIGGER keys_refuse_retiring_referenced BEFORE UPDATE OF state ON pgrekey.keys FOR EACH ROW WHEN (((new.state = 'retired'::text) AND (old.state <> 'retired'::text))) EXECUTE FUNCTION pgrekey.refuse_retiring_referenced_key();
