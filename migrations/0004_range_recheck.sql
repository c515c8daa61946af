-- Up Migration
-- Two columns that make a range's state complete, so that everything a worker
-- knows about its range commits with the batch that learned it.
--
-- recheck: the keys of rows that lost a compare-and-swap to an application
-- write and must be read again. The checkpoint has already moved past them, so
-- while they lived only in the worker's memory a stop, a crash or a lost lease
-- forgot them and the run could finish with them still under the old key.
-- A range is done only when its keyset is exhausted and recheck is empty.
--
-- batches_committed: each batch's checkpoint write is fenced by it (besides the
-- lease token). A batch retried because its COMMIT's reply was lost (a dropped
-- connection) then finds the count moved on and rolls back, instead of adding
-- its counters and failures a second time.
ALTER TABLE ranges
  ADD COLUMN recheck jsonb NOT NULL DEFAULT '[]' CONSTRAINT ranges_recheck_is_array CHECK (jsonb_typeof(recheck) = 'array'),
  ADD COLUMN batches_committed integer NOT NULL DEFAULT 0;

-- Down Migration
ALTER TABLE ranges DROP COLUMN batches_committed, DROP COLUMN recheck;
