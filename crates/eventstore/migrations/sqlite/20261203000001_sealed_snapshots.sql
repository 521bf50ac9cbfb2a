-- A snapshot names the chain link it was taken at and carries a seal over itself;
-- one taken before these columns has neither and is refused on load (the next
-- interval takes a sealed one).
ALTER TABLE snapshots ADD COLUMN chain_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE snapshots ADD COLUMN seal BLOB NOT NULL DEFAULT x'';
