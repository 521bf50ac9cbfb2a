-- Read models of the repair log, rebuildable from it (crates/repair/src/projections.rs).
-- One file for PostgreSQL and SQLite alike; dates are ISO text (YYYY-MM-DD).

CREATE TABLE repair_orders (
    order_id     TEXT PRIMARY KEY,
    device       TEXT NOT NULL,
    channel      TEXT NOT NULL,
    center_id    TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    stage        TEXT NOT NULL,
    opened_on    TEXT NOT NULL,
    opened_at    TEXT NOT NULL
);

CREATE INDEX repair_orders_device_idx ON repair_orders (device, opened_at);
CREATE INDEX repair_orders_center_idx ON repair_orders (center_id, stage, order_id);
CREATE INDEX repair_orders_booking_idx ON repair_orders (center_id, opened_on);

-- Every step of every order, with the stage it left the order in.
CREATE TABLE repair_timeline (
    order_id    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    event_type  TEXT NOT NULL,
    stage       TEXT NOT NULL,
    actor       TEXT NOT NULL,
    at          TEXT NOT NULL,
    PRIMARY KEY (order_id, version)
);

-- Time an order spent in a stage before each step that left it (or looped in it).
CREATE TABLE repair_stage_durations (
    order_id   TEXT NOT NULL,
    version    BIGINT NOT NULL,
    center_id  TEXT NOT NULL,
    stage      TEXT NOT NULL,
    seconds    BIGINT NOT NULL,
    PRIMARY KEY (order_id, version)
);

CREATE INDEX repair_stage_durations_center_idx ON repair_stage_durations (center_id, stage);
