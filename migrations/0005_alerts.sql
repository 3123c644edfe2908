-- The Notifier's state: alerts with their lifecycle, silences, and the
-- outbox of notifications still to deliver (written in the same transaction
-- as the state change that causes them, so a restart neither loses nor
-- repeats one).

CREATE TABLE alerts (
  -- <fingerprint>@<started ms>: one row per firing episode.
  id text PRIMARY KEY,
  -- rule | host | series labels: the identity of "the same alert".
  fingerprint text NOT NULL,
  rule text NOT NULL,
  host text NOT NULL,
  severity text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
  state text NOT NULL CHECK (state IN ('pending', 'firing', 'resolved')),
  labels jsonb NOT NULL DEFAULT '{}',
  summary text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  value double precision NOT NULL DEFAULT 0,
  threshold double precision NOT NULL DEFAULT 0,
  started_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  firing_at timestamptz,
  resolved_at timestamptz,
  -- When its last notification was queued (for the repeat interval).
  notified_at timestamptz,
  acknowledged_by text,
  acknowledged_at timestamptz
);
-- At most one open episode per fingerprint.
CREATE UNIQUE INDEX alerts_open ON alerts (fingerprint) WHERE state <> 'resolved';
CREATE INDEX alerts_recent ON alerts (updated_at DESC);

CREATE TABLE silences (
  id text PRIMARY KEY,
  alert_id text NOT NULL DEFAULT '',
  rule text NOT NULL DEFAULT '',
  host text NOT NULL DEFAULT '',
  ends_at timestamptz NOT NULL,
  created_by text NOT NULL DEFAULT '',
  comment text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE notifications (
  id bigserial PRIMARY KEY,
  channel text NOT NULL,
  alert_id text NOT NULL,
  -- firing | resolved | repeat
  kind text NOT NULL,
  -- The alert as it was when queued (protobuf Alert).
  alert bytea NOT NULL,
  state text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'sent', 'failed')),
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz
);
CREATE INDEX notifications_queued ON notifications (channel, next_attempt_at) WHERE state = 'queued';
