-- Self-help walks as they stand: which tree, when started, how they ended
-- (article, update or repair) and whether that spared the desk (deflected).
CREATE TABLE support_selfhelp (
    session_id  TEXT PRIMARY KEY,
    tree_id     TEXT NOT NULL,
    language    TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    outcome     TEXT,
    deflected   BIGINT NOT NULL
);
CREATE INDEX support_selfhelp_by_start ON support_selfhelp (started_at);
