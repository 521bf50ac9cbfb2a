-- Repairs made in this region of devices whose home is another region: which
-- device and home each order is for, learnt when the order opens, so that each
-- later step its owner is told of can be forwarded home (crates/warranty/src/abroad.rs).
CREATE TABLE warranty_repairs_abroad (
    order_id     TEXT PRIMARY KEY,
    stream_id    TEXT NOT NULL,
    home_region  TEXT NOT NULL,
    walk_in      BOOLEAN NOT NULL
);
