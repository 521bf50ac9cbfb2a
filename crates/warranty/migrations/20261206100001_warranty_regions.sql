-- Devices whose home is another region, as this region's replica holds them: the
-- whole state coverage is decided on (crates/warranty/src/replica.rs), folded
-- from the facts that region published, without the owner (no customer, address
-- or name crosses a region). Read-only here, rebuilt from the replica streams.
-- It replaces the row of published columns, which could not decide coverage.
DROP TABLE foreign_devices;
CREATE TABLE warranty_foreign_devices (
    stream_id    TEXT PRIMARY KEY,
    home_region  TEXT NOT NULL,
    -- The device's state as JSON, its customer id empty.
    state        TEXT NOT NULL,
    -- When the home region recorded the latest fact applied (RFC 3339, UTC).
    as_of        TEXT NOT NULL
);

-- Writes accepted here for devices of other regions, queued in their forward
-- streams: written with the forward event, settled when the home region's
-- resulting fact comes back through the replica (its causation id is the
-- forward event's id). What is unsettled is the forward queue.
CREATE TABLE warranty_forwards (
    event_id      TEXT PRIMARY KEY,
    stream_id     TEXT NOT NULL,
    home_region   TEXT NOT NULL,
    kind          TEXT NOT NULL,
    forwarded_at  TEXT NOT NULL,
    applied_at    TEXT
);
CREATE INDEX warranty_forwards_unsettled ON warranty_forwards (home_region, forwarded_at)
    WHERE applied_at IS NULL;
