-- The key that signs survey links, made by the first replica to start (see
-- surveys.rs). Not a read model: a rebuild leaves it alone.
CREATE TABLE support_link_keys (
    purpose  TEXT PRIMARY KEY,
    secret   TEXT NOT NULL
);

-- Each resolved case's figures, for quality per agent and team by the ISO
-- week of its (latest) resolution. Seconds are wall-clock from the opening;
-- flags are 0 or 1.
CREATE TABLE support_quality (
    case_id                 TEXT PRIMARY KEY,
    team_id                 TEXT NOT NULL,
    agent_id                TEXT,
    week                    TEXT NOT NULL,
    first_response_seconds  BIGINT,
    resolution_seconds      BIGINT NOT NULL,
    breached                BIGINT NOT NULL,
    first_contact           BIGINT NOT NULL,
    reopened                BIGINT NOT NULL,
    escalated               BIGINT NOT NULL
);
CREATE INDEX support_quality_by_week ON support_quality (week);

-- Satisfaction surveys: what each asks about and whose work that was, and the
-- score once answered. Comments stay in the (sealed) log.
CREATE TABLE support_surveys (
    survey_id    TEXT PRIMARY KEY,
    subject      TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    case_id      TEXT,
    order_id     TEXT,
    team_id      TEXT,
    agent_id     TEXT,
    center_id    TEXT,
    technician   TEXT,
    sent_at      TEXT NOT NULL,
    answered_at  TEXT,
    week         TEXT,
    score        BIGINT
);
CREATE INDEX support_surveys_by_week ON support_surveys (week);
CREATE INDEX support_surveys_by_customer ON support_surveys (customer_id);
