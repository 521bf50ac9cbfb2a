-- Read models of the notification log (crates/notification/src/projections.rs). One
-- file for PostgreSQL and SQLite alike; times are RFC 3339 UTC text with
-- microseconds, so they sort as text.

-- Every notification: the in-app inbox (channel in_app) and the send queue.
CREATE TABLE notifications (
    notification_id  TEXT PRIMARY KEY,
    customer_id      TEXT NOT NULL,
    channel          TEXT NOT NULL,
    kind             TEXT NOT NULL,
    topic            TEXT NOT NULL,
    language         TEXT NOT NULL,
    subject          TEXT NOT NULL,
    body             TEXT NOT NULL,
    urgent           INTEGER NOT NULL,
    status           TEXT NOT NULL,
    next_attempt_at  TEXT,
    lease_until      TEXT,
    is_read          INTEGER NOT NULL,
    created_at       TEXT NOT NULL,
    source_event_id  TEXT NOT NULL,
    -- The log position of the request: the inbox's order and page token.
    seq              BIGINT NOT NULL
);

CREATE INDEX notifications_inbox_idx ON notifications (customer_id, channel, seq);
CREATE INDEX notifications_due_idx ON notifications (status, next_attempt_at);

-- Reminders, for the sweep that fires them when due.
CREATE TABLE reminders (
    reminder_id  TEXT PRIMARY KEY,
    kind         TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    due_at       TEXT NOT NULL,
    status       TEXT NOT NULL
);

CREATE INDEX reminders_due_idx ON reminders (status, due_at);
