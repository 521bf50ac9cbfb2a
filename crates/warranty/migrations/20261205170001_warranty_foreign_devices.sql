-- Devices whose home is another region: the warranty facts that region published,
-- applied from its replica stream here (crates/warranty/src/replica.rs). Read-only
-- here (only the home region writes a device), rebuilt from the replica, and
-- pseudonymous: no customer, address or name crosses a region.
CREATE TABLE foreign_devices (
    stream_id            TEXT PRIMARY KEY,
    home_region          TEXT NOT NULL,
    model                TEXT NOT NULL,
    purchase_date        TEXT NOT NULL,
    country              TEXT NOT NULL,
    channel              INTEGER NOT NULL,
    policy_id            TEXT NOT NULL,
    policy_version       BIGINT NOT NULL,
    base_warranty_end    TEXT NOT NULL,
    legal_guarantee_end  TEXT NOT NULL,
    purchase_declared    BOOLEAN NOT NULL,
    plan_id              TEXT NOT NULL DEFAULT '',
    plan_coverage_end    TEXT NOT NULL DEFAULT '',
    voided               BOOLEAN NOT NULL DEFAULT FALSE,
    void_reason          TEXT NOT NULL DEFAULT '',
    claims               BIGINT NOT NULL DEFAULT 0,
    -- When the home region recorded the latest fact applied (RFC 3339, UTC).
    as_of                TEXT NOT NULL
);
