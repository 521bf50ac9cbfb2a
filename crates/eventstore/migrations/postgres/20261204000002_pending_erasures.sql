-- Customers whose erasure waits for an obligation to end (a parcel on its way);
-- a sweep carries each out once nothing needs the data. Written in the same
-- transaction as the erasure's events.
CREATE TABLE pending_erasures (
    customer_id  TEXT PRIMARY KEY,
    requested_at BIGINT NOT NULL
);
