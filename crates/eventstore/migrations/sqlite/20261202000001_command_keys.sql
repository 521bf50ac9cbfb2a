-- Idempotency keys: the request each x-command-id was first used for. A retry with
-- the same key and the same request finds its earlier result; the same key with
-- another request, or aimed at another stream, is refused (ALREADY_EXISTS).
CREATE TABLE command_keys (
    command_id   BLOB PRIMARY KEY,
    -- SHA-256 of the request's type and encoded body.
    fingerprint  BLOB NOT NULL CHECK (length(fingerprint) = 32),
    stream_id    TEXT NOT NULL,
    -- Microseconds since the Unix epoch, UTC.
    recorded_at  INTEGER NOT NULL
) WITHOUT ROWID;
