-- Cases as their log leaves them, for queues, workload and the SLA sweep.
-- `state` is the case's folded state as JSON: pseudonymous ids, no text (the
-- conversation stays in the sealed log). `next_alarm` is the earliest instant a
-- clock needs a warning or breach recorded; NULL when none runs.
CREATE TABLE support_cases (
    case_id      TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    team_id      TEXT NOT NULL,
    agent_id     TEXT,
    status       TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    next_alarm   TEXT,
    breached     BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    state        TEXT NOT NULL
);
CREATE INDEX support_cases_by_alarm ON support_cases (next_alarm) WHERE next_alarm IS NOT NULL;
CREATE INDEX support_cases_by_team ON support_cases (team_id, status, opened_at);
CREATE INDEX support_cases_by_agent ON support_cases (agent_id, status);
CREATE INDEX support_cases_by_customer ON support_cases (customer_id, opened_at);

-- Every team that has held a case: its agents may read it.
CREATE TABLE support_case_teams (
    case_id  TEXT NOT NULL,
    team_id  TEXT NOT NULL,
    PRIMARY KEY (case_id, team_id)
);
CREATE INDEX support_case_teams_by_team ON support_case_teams (team_id);
