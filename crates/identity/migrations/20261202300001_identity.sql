-- The embedded identity provider's own database (crates/identity). SQLite only:
-- in the distributed form an external OpenID Connect provider holds accounts.

-- Staff who sign in with a username and password; operators also with TOTP.
CREATE TABLE accounts (
    username       TEXT PRIMARY KEY,
    subject        TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL,
    -- The centers a technician or manager works at, comma-separated; '*' all.
    centers        TEXT NOT NULL,
    -- argon2id, PHC string format.
    password_hash  TEXT NOT NULL,
    -- RFC 6238 secret, base32; required at sign-in when present.
    totp_secret    TEXT,
    created_at     INTEGER NOT NULL
);

-- One row per sign-in: what its refresh tokens may mint, until revoked.
CREATE TABLE sessions (
    session_id  TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    role        TEXT NOT NULL,
    centers     TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

-- Refresh tokens by the SHA-256 of their value (the value itself is never
-- kept). Each is used once: using one that was used already revokes its session.
CREATE TABLE refresh_tokens (
    token_digest  TEXT PRIMARY KEY,
    session_id    TEXT NOT NULL REFERENCES sessions (session_id),
    used          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX refresh_tokens_session_idx ON refresh_tokens (session_id);

-- The issuer's signing keys, oldest first, so tokens outlive a restart.
CREATE TABLE signing_keys (
    kid         TEXT PRIMARY KEY,
    pkcs8       BLOB NOT NULL,
    created_at  INTEGER NOT NULL
);
