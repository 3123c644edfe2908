-- The Console's accounts: login credentials on users, its sessions and its
-- audit trail. Only the Console (and mirrorctl users) write these.

ALTER TABLE users
  ADD COLUMN password_hash text,
  -- The TOTP key (RFC 6238, SHA-1, 6 digits, 30 s); enrolled once the user
  -- has confirmed one code from their authenticator.
  ADD COLUMN totp_secret text,
  ADD COLUMN totp_enrolled boolean NOT NULL DEFAULT false,
  -- The last time step a code was accepted for: a code is good once.
  ADD COLUMN totp_last_step bigint NOT NULL DEFAULT 0,
  ADD COLUMN failed_logins integer NOT NULL DEFAULT 0,
  ADD COLUMN locked_until timestamptz;

CREATE TABLE console_sessions (
  -- SHA-256 of the cookie's token: the token itself is never stored.
  token_hash bytea PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- 'enrol' (password checked, TOTP being enrolled) or 'ready'.
  stage text NOT NULL,
  csrf text NOT NULL,
  address text NOT NULL DEFAULT '',
  user_agent text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL
);

CREATE INDEX console_sessions_user ON console_sessions (user_id);

CREATE TABLE console_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  user_name text NOT NULL DEFAULT '',
  address text NOT NULL DEFAULT '',
  action text NOT NULL,
  outcome text NOT NULL,
  detail text NOT NULL DEFAULT ''
);

CREATE INDEX console_audit_at ON console_audit (at);
