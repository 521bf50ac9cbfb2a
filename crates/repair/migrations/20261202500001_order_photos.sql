-- Photos of a device's condition, kept with its order under the SHA-256 of their
-- bytes: the check-in event names them by it, so the hash chain covers them.
CREATE TABLE order_photos (
    order_id      TEXT NOT NULL,
    photo_id      TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    size          BIGINT NOT NULL,
    data          BYTEA NOT NULL,
    attached_at   TEXT NOT NULL,
    PRIMARY KEY (order_id, photo_id)
);
