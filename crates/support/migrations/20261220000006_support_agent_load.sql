-- Each agent's open cases, kept as cases move, so routing a new case reads a
-- few rows however many cases are open.
CREATE TABLE support_agent_load (
    agent_id    TEXT PRIMARY KEY,
    open_cases  BIGINT NOT NULL
);
