-- Read models of the logistics log (crates/logistics/src/projections.rs). One file
-- for PostgreSQL and SQLite alike; times are RFC 3339 UTC text with microseconds,
-- so they sort as text.

-- Every shipment, for lookups by repair order and the stall sweep.
CREATE TABLE shipments (
    shipment_id               TEXT PRIMARY KEY,
    direction                 TEXT NOT NULL,
    repair_order_id           TEXT,
    accessory_replacement_id  TEXT,
    carrier                   TEXT NOT NULL,
    tracking_number           TEXT NOT NULL,
    status                    TEXT NOT NULL,
    active                    INTEGER NOT NULL,
    stalled                   INTEGER NOT NULL,
    last_activity_at          TEXT NOT NULL,
    created_at                TEXT NOT NULL
);

CREATE INDEX shipments_order_idx ON shipments (repair_order_id, created_at);
CREATE INDEX shipments_sweep_idx ON shipments (active, stalled, last_activity_at);

-- Which shipment a carrier's tracking number stands for, and since when. Written
-- with the label in the same transaction (scans can arrive at once) and refilled
-- by the projection; a carrier may reuse a number for a new parcel.
CREATE TABLE tracking_numbers (
    carrier          TEXT NOT NULL,
    tracking_number  TEXT NOT NULL,
    shipment_id      TEXT NOT NULL,
    issued_at        TEXT NOT NULL,
    PRIMARY KEY (carrier, tracking_number, shipment_id)
);
