-- The exactly-once keys are identifiers, never sorted for people: compare
-- them bytewise (COLLATE "C") instead of by the database's locale. Every
-- stored batch inserts one key, so its index insert is on Ingest's write
-- path; bytewise comparison makes it cheaper.
ALTER TABLE ingest_batches
  ALTER COLUMN host TYPE text COLLATE "C",
  ALTER COLUMN boot_id TYPE text COLLATE "C";
