-- Accounts for people: passwords for the pages, API tokens (many per user,
-- hashed, with an expiry), page sessions, one-time sign-in links, login
-- attempts (for rate limiting), the access log, and fields shared with a
-- successor.

-- A password for the pages (scrypt, see api/passwords.py); NULL until one is
-- set. must_change: the initial password printed by `agri users add` must be
-- replaced at first login.
ALTER TABLE users ADD COLUMN password_hash text;
ALTER TABLE users ADD COLUMN must_change_password boolean NOT NULL DEFAULT true;
ALTER TABLE users ADD COLUMN display_name text CHECK (char_length(display_name) <= 100);
ALTER TABLE users ADD COLUMN language text NOT NULL DEFAULT 'ja'
    CHECK (language IN ('ja', 'en'));

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    user_name    text NOT NULL REFERENCES users (name),
    label        text NOT NULL CHECK (char_length(label) BETWEEN 1 AND 100),
    token_hash   bytea NOT NULL UNIQUE,          -- SHA-256 of the token
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz,                    -- NULL: does not expire
    last_used_at timestamptz,
    revoked_at   timestamptz
);
CREATE INDEX api_tokens_user ON api_tokens (user_name);

-- Tokens users had before: each becomes that user's first listed token.
INSERT INTO api_tokens (user_name, label, token_hash, created_at)
SELECT name, 'initial', token_hash, created_at FROM users;
ALTER TABLE users DROP COLUMN token_hash;

CREATE TABLE page_sessions (
    id_hash      bytea PRIMARY KEY,              -- SHA-256 of the cookie value
    user_name    text NOT NULL REFERENCES users (name),
    csrf_token   text NOT NULL,
    via          text NOT NULL CHECK (via IN ('password', 'link')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL DEFAULT now(),
    ended_at     timestamptz
);
CREATE INDEX page_sessions_user ON page_sessions (user_name);

CREATE TABLE sign_in_links (
    token_hash   bytea PRIMARY KEY,
    user_name    text NOT NULL REFERENCES users (name),
    created_by   text NOT NULL REFERENCES users (name),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);

CREATE TABLE login_attempts (
    id         bigserial PRIMARY KEY,
    time       timestamptz NOT NULL DEFAULT now(),
    user_name  text NOT NULL CHECK (char_length(user_name) <= 64),
    client     text NOT NULL CHECK (char_length(client) <= 64),
    succeeded  boolean NOT NULL
);
CREATE INDEX login_attempts_user ON login_attempts (user_name, time DESC);
CREATE INDEX login_attempts_client ON login_attempts (client, time DESC);

-- One row per request: who, what, the answer and how long it took. Paths are
-- cut to 300 characters; rows older than the retention are deleted by the API.
CREATE TABLE access_log (
    id          bigserial PRIMARY KEY,
    time        timestamptz NOT NULL DEFAULT now(),
    user_name   text,
    client      text NOT NULL,
    method      text NOT NULL,
    path        text NOT NULL CHECK (char_length(path) <= 300),
    status      smallint NOT NULL,
    duration_ms real NOT NULL
);
CREATE INDEX access_log_time ON access_log (time DESC);

-- A field's owner lets a named user (a successor) read its history.
CREATE TABLE field_shares (
    field_id   text NOT NULL REFERENCES fields (id),
    grantee    text NOT NULL REFERENCES users (name),
    granted_by text NOT NULL REFERENCES users (name),
    granted_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    PRIMARY KEY (field_id, grantee)
);
CREATE INDEX field_shares_grantee ON field_shares (grantee) WHERE revoked_at IS NULL;
