-- Read models of the parts log (crates/parts/src/projections.rs). One file for
-- PostgreSQL and SQLite alike; times are RFC 3339 UTC text with microseconds.

-- Each part's stock at each location, kept by deltas from the stock streams.
CREATE TABLE stock_levels (
    location       TEXT NOT NULL,
    part_number    TEXT NOT NULL,
    on_hand        BIGINT NOT NULL,
    reserved       BIGINT NOT NULL,
    on_order       BIGINT NOT NULL,
    waiting        BIGINT NOT NULL,
    reorder_point  BIGINT NOT NULL,
    low            BIGINT NOT NULL,
    version        BIGINT NOT NULL,
    PRIMARY KEY (location, part_number)
);

CREATE INDEX stock_levels_on_order_idx ON stock_levels (on_order);

-- Every serial fitted, once: written with the PartConsumed event in the same
-- transaction (so a serial cannot be fitted twice, even in two places at once)
-- and refilled by the projection on a rebuild.
CREATE TABLE consumed_serials (
    part_number      TEXT NOT NULL,
    serial           TEXT NOT NULL,
    location         TEXT NOT NULL,
    repair_order_id  TEXT NOT NULL,
    consumed_at      TEXT NOT NULL,
    PRIMARY KEY (part_number, serial)
);

CREATE INDEX consumed_serials_order_idx ON consumed_serials (location, part_number, repair_order_id);
