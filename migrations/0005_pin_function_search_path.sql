-- Up Migration
-- Pins the search_path of pg-rekey's functions that call built-ins. They run
-- in sessions pg-rekey does not control — reset_key_version() in the
-- application's, the others in whatever role runs pg-rekey — and a function
-- is resolved through the calling session's search_path each time its body
-- is planned. A schema placed before pg_catalog there (ALTER ROLE … SET
-- search_path = app, pg_catalog), or a function with a more exact signature
-- than a built-in's in any schema on the path (jsonb_build_object(text, text)
-- against the built-in's VARIADIC "any"), would otherwise replace it: the
-- reset trigger stopped resetting hints, the retire guard let a referenced
-- key be retired, and history --verify reported an intact chain as broken.
-- Their bodies name no object of our schema, so pg_catalog alone serves
-- (pg_temp last, so a temporary object cannot shadow either).
ALTER FUNCTION reset_key_version() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION refuse_retiring_referenced_key() SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION add_counts(jsonb, jsonb) SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION run_canonical(runs) SET search_path = pg_catalog, pg_temp;

-- Down Migration
ALTER FUNCTION run_canonical(runs) RESET search_path;
ALTER FUNCTION add_counts(jsonb, jsonb) RESET search_path;
ALTER FUNCTION refuse_retiring_referenced_key() RESET search_path;
ALTER FUNCTION reset_key_version() RESET search_path;
