-- The clocks running on repairs (legal.toml): one row per order and kind, gone
-- once stopped, missed or the order is done. The sweep reads the ones due.
CREATE TABLE support_deadlines (
    order_id  TEXT NOT NULL,
    kind      TEXT NOT NULL,
    due       TEXT NOT NULL,
    PRIMARY KEY (order_id, kind)
);
CREATE INDEX support_deadlines_by_due ON support_deadlines (due);
