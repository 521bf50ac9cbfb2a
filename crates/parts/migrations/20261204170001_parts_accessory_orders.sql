-- Each accessory order's payment, by the provider's id: where its webhook is
-- applied (crates/parts/src/projections.rs). Never deleted: a late redelivery
-- still finds its order, and finds it settled.
CREATE TABLE parts_order_payments (
    payment_id  TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL
);
