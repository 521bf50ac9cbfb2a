-- What the network planner and the quality figures read (crates/repair/src/network.rs):
-- one row per order, rebuildable from the log. The customer is placed at a city
-- (a GeoNames id), never at an address. Times are RFC 3339 text; flags and
-- counts are integers, the same in both backends.
CREATE TABLE network_orders (
    order_id        TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL,
    device          TEXT NOT NULL,
    channel         TEXT NOT NULL,
    center_id       TEXT NOT NULL,
    -- A mail-in's address country; empty for a walk-in (its center's).
    country         TEXT NOT NULL,
    -- The GeoNames id of a mail-in address's city; NULL when it names no known
    -- city, for a walk-in, and once the customer is erased.
    area_id         BIGINT,
    opened_at       TEXT NOT NULL,
    -- The Monday of the week the order was opened (YYYY-MM-DD).
    week            TEXT NOT NULL,
    fault           TEXT NOT NULL DEFAULT '',
    technician      TEXT NOT NULL DEFAULT '',
    received_at     TEXT,
    ready_at        TEXT,
    finished_at     TEXT,
    -- Check-in or arrival to ready, and a mail-in's opening to back home.
    ready_seconds       BIGINT,
    round_trip_seconds  BIGINT,
    repaired        BIGINT NOT NULL DEFAULT 0,
    quoted          BIGINT NOT NULL DEFAULT 0,
    declined        BIGINT NOT NULL DEFAULT 0,
    qc_passes       BIGINT NOT NULL DEFAULT 0,
    qc_failures     BIGINT NOT NULL DEFAULT 0,
    cancelled       BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX network_orders_country_idx ON network_orders (country, channel);
CREATE INDEX network_orders_device_idx ON network_orders (device, opened_at);
CREATE INDEX network_orders_customer_idx ON network_orders (customer_id);


-- Where each customer is placed: the city of their latest mail-in address, or,
-- until they mail a phone in, the center they last walked into.
CREATE TABLE network_customers (
    customer_id  TEXT PRIMARY KEY,
    mail_in      BIGINT NOT NULL,
    -- The mail-in address's country and city; empty and NULL for walk-ins.
    country      TEXT NOT NULL,
    area_id      BIGINT,
    -- The center last walked into; empty once they mailed in.
    center_id    TEXT NOT NULL
);

CREATE INDEX network_customers_place_idx ON network_customers (mail_in, country, area_id, center_id);
