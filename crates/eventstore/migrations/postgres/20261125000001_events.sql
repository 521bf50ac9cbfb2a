-- The append-only event log. One row per event; see crates/eventstore/src/chain.rs
-- for the hash chain and src/postgres.rs for how followers read it.
CREATE TABLE events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The writing transaction. Followers read only below the oldest transaction
    -- still in flight, ordered by (transaction_id, position), so an event that
    -- commits late with a lower position is never skipped.
    transaction_id  XID8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       TEXT NOT NULL,
    stream_version  BIGINT NOT NULL CHECK (stream_version > 0),
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL CHECK (schema_version > 0),
    payload         BYTEA NOT NULL,
    correlation_id  UUID NOT NULL,
    causation_id    UUID,
    traceparent     TEXT,
    tracestate      TEXT,
    actor           TEXT NOT NULL,
    region          TEXT NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL,
    hash            BYTEA NOT NULL CHECK (length(hash) = 32),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);

CREATE INDEX events_follow_idx ON events (transaction_id, position);

-- The log is append-only. Changing history takes a deliberate act by the table's
-- owner (disabling this trigger), and the hash chain still shows it.
CREATE FUNCTION events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_refuse_change();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_refuse_change();

CREATE TABLE snapshots (
    stream_id       TEXT PRIMARY KEY,
    stream_version  BIGINT NOT NULL,
    schema_version  INTEGER NOT NULL,
    payload         BYTEA NOT NULL,
    taken_at        TIMESTAMPTZ NOT NULL
);
