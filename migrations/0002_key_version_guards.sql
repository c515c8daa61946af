-- Up Migration
-- Database-level guards for the key-version columns that target migrations add
-- (DESIGN §3). Like 0001, created unqualified in the configured schema.

-- Trigger function of every target column's "reset on foreign write" trigger.
-- Target triggers call it as reset_key_version('<column>_key_version') with a
-- WHEN clause (c changed, its key version did not), so it only runs for the rare
-- application write and needs no per-column code: jsonb_populate_record sets the
-- named field of NEW to NULL, which means "unknown, examine".
CREATE FUNCTION reset_key_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  NEW := jsonb_populate_record(NEW, jsonb_build_object(TG_ARGV[0], NULL));
  RETURN NEW;
END
$$;

-- A key still referenced by a key-version column must not be retired. The
-- foreign keys of target columns only stop a DELETE; retiring is an UPDATE of
-- state, so this trigger checks every column whose foreign key references keys.
CREATE FUNCTION refuse_retiring_referenced_key() RETURNS trigger
LANGUAGE plpgsql AS $$
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
$$;

CREATE TRIGGER keys_refuse_retiring_referenced
  BEFORE UPDATE OF state ON keys
  FOR EACH ROW WHEN (NEW.state = 'retired' AND OLD.state <> 'retired')
  EXECUTE FUNCTION refuse_retiring_referenced_key();

-- Down Migration
DROP TRIGGER keys_refuse_retiring_referenced ON keys;
DROP FUNCTION refuse_retiring_referenced_key();
DROP FUNCTION reset_key_version();
