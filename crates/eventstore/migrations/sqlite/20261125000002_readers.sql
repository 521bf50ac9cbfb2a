-- Bookkeeping of the readers of logs.
--
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

-- The events each consumer has handled, written in the same transaction as the
-- handler's effects, so a redelivered event is recognised and not applied again.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    BLOB NOT NULL,
    -- Microseconds since the Unix epoch, UTC.
    handled_at  INTEGER NOT NULL,
    PRIMARY KEY (consumer, event_id)
) WITHOUT ROWID;

-- Events a consumer following another log directly (embedded mode) gave up on.
-- With NATS, dead letters go to the region's dead-letter stream instead.
CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    consumer     TEXT NOT NULL,
    source       TEXT NOT NULL,
    event_id     BLOB NOT NULL,
    event_type   TEXT NOT NULL,
    position     INTEGER NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT NOT NULL,
    failed_at    INTEGER NOT NULL,
    resolved_at  INTEGER
);

CREATE INDEX dead_letters_open_idx ON dead_letters (consumer, id) WHERE resolved_at IS NULL;
