-- Accessory orders whose payment has not settled: what the reconciliation asks
-- the provider about, for a webhook that never came (crates/parts/src/projections.rs).
CREATE TABLE parts_pending_payments (
    payment_id  TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    placed_on   TEXT NOT NULL
);
