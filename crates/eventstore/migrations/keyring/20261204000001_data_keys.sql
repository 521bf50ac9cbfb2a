-- One data key per person, wrapped by the key-encryption key named in `kek`.
-- Deleting a row erases everything sealed with that key. SQL both backends read.
CREATE TABLE IF NOT EXISTS data_keys (
    subject    TEXT PRIMARY KEY,
    key_id     TEXT NOT NULL UNIQUE,
    wrapped    BYTEA NOT NULL,
    kek        TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Who was erased and when (no key material): an erasure is answered again the same way.
CREATE TABLE IF NOT EXISTS erased_subjects (
    subject   TEXT PRIMARY KEY,
    erased_at BIGINT NOT NULL
);
