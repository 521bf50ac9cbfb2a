-- Idempotency keys: the request each x-command-id was first used for. A retry with
-- the same key and the same request finds its earlier result; the same key with
-- another request, or aimed at another stream, is refused (ALREADY_EXISTS).
CREATE TABLE command_keys (
    command_id   UUID PRIMARY KEY,
    -- SHA-256 of the request's type and encoded body.
    fingerprint  BYTEA NOT NULL CHECK (length(fingerprint) = 32),
    stream_id    TEXT NOT NULL,
    recorded_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
