-- Read models of the warranty log, rebuildable from it (crates/warranty/src/projections.rs).
-- One file for PostgreSQL and SQLite alike.
-- Dates are ISO text (YYYY-MM-DD), which sorts as dates do, on both backends.

CREATE TABLE warranty_devices (
    stream_id      TEXT PRIMARY KEY,
    id_kind        TEXT NOT NULL,
    id_value       TEXT NOT NULL,
    customer_id    TEXT NOT NULL,
    model          TEXT NOT NULL,
    country        TEXT NOT NULL,
    purchase_date  TEXT NOT NULL,
    coverage_end   TEXT NOT NULL,
    voided         BOOLEAN NOT NULL
);

CREATE INDEX warranty_devices_customer_idx ON warranty_devices (customer_id, stream_id);
CREATE INDEX warranty_devices_expiry_idx ON warranty_devices (coverage_end);

CREATE TABLE warranty_coverage_decisions (
    event_id        TEXT PRIMARY KEY,
    stream_id       TEXT NOT NULL,
    policy_id       TEXT NOT NULL,
    policy_version  BIGINT NOT NULL,
    fault           TEXT NOT NULL,
    covered         BOOLEAN NOT NULL,
    reason          TEXT NOT NULL,
    decided_for     TEXT NOT NULL
);

CREATE INDEX warranty_coverage_decisions_policy_idx
    ON warranty_coverage_decisions (policy_id, policy_version);
