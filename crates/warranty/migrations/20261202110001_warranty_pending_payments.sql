-- Plans ordered whose payment has not settled: what the settlement sweep asks
-- the payment provider about (crates/warranty/src/projections.rs).
CREATE TABLE warranty_pending_payments (
    stream_id   TEXT PRIMARY KEY,
    payment_id  TEXT NOT NULL,
    ordered_on  TEXT NOT NULL
);
