-- A snapshot names the chain link it was taken at and carries a seal over itself;
-- one taken before these columns has neither and is refused on load (the next
-- interval takes a sealed one).
ALTER TABLE snapshots
    ADD COLUMN chain_hash BYTEA NOT NULL DEFAULT '\x',
    ADD COLUMN seal BYTEA NOT NULL DEFAULT '\x';
