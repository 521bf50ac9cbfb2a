-- Where each reader of a log has got to: the relay of this service's log, a
-- projection of it, or a consumer following another service's log. Moved in the
-- same transaction as the reader's effects.
CREATE TABLE checkpoints (
    name            TEXT PRIMARY KEY,
    transaction_id  INTEGER NOT NULL CHECK (transaction_id >= 0),
    position        INTEGER NOT NULL CHECK (position >= 0),
    -- Microseconds since the Unix epoch, UTC.
    updated_at      INTEGER NOT NULL
);
