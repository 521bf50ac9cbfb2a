-- Bookkeeping of the readers of logs.
--
-- Where each reader of a log has got to: the relay of this service's log, a
-- projection of it, or a consumer following another service's log. Moved in the
-- same transaction as the reader's effects.
CREATE TABLE checkpoints (
    name            TEXT PRIMARY KEY,
    transaction_id  BIGINT NOT NULL CHECK (transaction_id >= 0),
    position        BIGINT NOT NULL CHECK (position >= 0),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The events each consumer has handled, written in the same transaction as the
-- handler's effects, so a redelivered event is recognised and not applied again.
CREATE TABLE inbox (
    consumer    TEXT NOT NULL,
    event_id    UUID NOT NULL,
    handled_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Events a consumer following another log directly (embedded mode) gave up on.
-- With NATS, dead letters go to the region's dead-letter stream instead.
CREATE TABLE dead_letters (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    consumer     TEXT NOT NULL,
    source       TEXT NOT NULL,
    event_id     UUID NOT NULL,
    event_type   TEXT NOT NULL,
    position     BIGINT NOT NULL,
    attempts     INTEGER NOT NULL,
    error        TEXT NOT NULL,
    failed_at    TIMESTAMPTZ NOT NULL,
    resolved_at  TIMESTAMPTZ
);

CREATE INDEX dead_letters_open_idx ON dead_letters (consumer, id) WHERE resolved_at IS NULL;
