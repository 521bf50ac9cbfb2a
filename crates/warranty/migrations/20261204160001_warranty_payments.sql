-- Every plan payment ever ordered, by the provider's id: where a webhook about it
-- is applied (crates/warranty/src/projections.rs). Never deleted: a late
-- redelivery still finds its device, and finds the payment settled.
CREATE TABLE warranty_payments (
    payment_id  TEXT PRIMARY KEY,
    stream_id   TEXT NOT NULL
);
