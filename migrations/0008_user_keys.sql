-- Command-signing keys made in a person's browser (Console 2/2): several
-- per user, each revocable. The CommandRouter accepts a request signed by
-- one of these (operator_key_id "<user>/<key id>") as it does one signed by
-- users.public_key (operator_key_id "<user>").

CREATE TABLE user_keys (
  id text PRIMARY KEY,
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  -- Ed25519, raw 32 bytes.
  public_key bytea NOT NULL CHECK (length(public_key) = 32),
  label text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  last_used_at timestamptz,
  revoked_at timestamptz
);

CREATE INDEX user_keys_user ON user_keys (user_id);

-- Who ended a console session, when an admin did.
ALTER TABLE console_sessions ADD COLUMN id bigserial;
CREATE UNIQUE INDEX console_sessions_id ON console_sessions (id);

-- What the person who acknowledged an alert said (Console 2/2).
ALTER TABLE alerts ADD COLUMN acknowledged_comment text NOT NULL DEFAULT '';
