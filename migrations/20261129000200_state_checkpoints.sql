-- Session state is checkpointed every few seconds instead of with every
-- batch (consumer.checkpoint_interval_ms): rewriting every touched session's
-- state per batch was most of the consumers' Postgres cost. Positions still
-- commit with every batch; a partition's state rows are current as of its
-- checkpoint offset, and a consumer that takes the partition over re-applies
-- the records between the two to its in-memory state (effects are not
-- written again).
ALTER TABLE consumer_offsets ADD COLUMN checkpoint_offset bigint;
COMMENT ON COLUMN consumer_offsets.checkpoint_offset IS 'The consumer_state rows of this consumer''s sessions on this partition reflect every record before this offset; records from here to next_offset are re-applied to state (not to the tables) when the partition is taken over. Rows start at 0; NULL (rows from before checkpoints existed, whose states were written with every batch): the same as next_offset.';

-- Large values are compressed with lz4 rather than pglz where the server
-- has it: pglz was a tenth of Postgres's CPU under load.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
             AND 'lz4' = ANY (enumvals)) THEN
    ALTER TABLE consumer_state ALTER COLUMN state SET COMPRESSION lz4;
    ALTER TABLE events ALTER COLUMN data SET COMPRESSION lz4;
    ALTER TABLE events ALTER COLUMN attributes SET COMPRESSION lz4;
  END IF;
END $$;
