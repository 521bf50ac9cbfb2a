-- Accessory orders (sales and replacements) by their customer: what a
-- customer's data export and erasure go through (crates/parts/src/privacy.rs).
-- Pseudonymous ids only; the address stays in the sealed log.
CREATE TABLE parts_customer_orders (
    order_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    placed_on    TEXT NOT NULL
);
CREATE INDEX parts_customer_orders_by_customer ON parts_customer_orders (customer_id, placed_on);
