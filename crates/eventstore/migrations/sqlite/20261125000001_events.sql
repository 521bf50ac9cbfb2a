-- The append-only event log. SQLite has one writer at a time, so positions are
-- handed out in commit order and followers read by position alone.
CREATE TABLE events (
    position        INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id       TEXT NOT NULL,
    stream_version  INTEGER NOT NULL CHECK (stream_version > 0),
    event_id        BLOB NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version > 0),
    payload         BLOB NOT NULL,
    correlation_id  BLOB NOT NULL,
    causation_id    BLOB,
    traceparent     TEXT,
    tracestate      TEXT,
    actor           TEXT NOT NULL,
    region          TEXT NOT NULL,
    -- Microseconds since the Unix epoch, UTC.
    recorded_at     INTEGER NOT NULL,
    hash            BLOB NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: UPDATE refused');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the event log is append-only: DELETE refused');
END;

CREATE TABLE snapshots (
    stream_id       TEXT PRIMARY KEY,
    stream_version  INTEGER NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         BLOB NOT NULL,
    taken_at        INTEGER NOT NULL
);
