-- Remote commands: who may run what where, every request and its fate per
-- host, the output, and an archive for audit rows past the retention.

-- Which role may run which actions on which host groups. action is a glob
-- over the action's name: "builtin:restart_service", "builtin:wake_on_lan",
-- "builtin:collect_now", or "argv:" followed by the argv joined by spaces
-- ("argv:systemctl status *"); host_group '*' is every host. Admins may run
-- anything; viewers nothing.
CREATE TABLE command_rules (
  id bigserial PRIMARY KEY,
  role text NOT NULL REFERENCES roles (name),
  action text NOT NULL,
  host_group text NOT NULL DEFAULT '*',
  description text NOT NULL DEFAULT '',
  UNIQUE (role, action, host_group)
);

INSERT INTO command_rules (role, action, host_group, description) VALUES
  ('operator', 'builtin:*', '*', 'operators may use the built-in actions everywhere');

CREATE TABLE commands (
  id text PRIMARY KEY,
  requester text NOT NULL,
  reason text NOT NULL DEFAULT '',
  -- The CommandRequest as received (protobuf), for the audit trail.
  request bytea NOT NULL,
  action text NOT NULL,
  target text NOT NULL,
  timeout_ms integer NOT NULL,
  deadline_at timestamptz NOT NULL,
  state text NOT NULL,
  state_reason text NOT NULL DEFAULT '',
  submitted_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commands_submitted ON commands (submitted_at);
CREATE INDEX commands_requester ON commands (requester, submitted_at);
CREATE INDEX commands_state ON commands (state) WHERE state IN ('pending', 'dispatched', 'running');

-- One row per target host: where the command is on that host.
CREATE TABLE command_targets (
  command_id text NOT NULL REFERENCES commands (id) ON DELETE CASCADE,
  host text NOT NULL,
  -- The host the dispatch went to: the target itself, or an awake
  -- neighbour relaying Wake-on-LAN.
  via text NOT NULL,
  state text NOT NULL,
  reason text NOT NULL DEFAULT '',
  dispatched_at timestamptz,
  started_at timestamptz,
  finished_at timestamptz,
  exit_code integer,
  signal integer,
  truncated boolean NOT NULL DEFAULT false,
  output_bytes bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (command_id, host)
);
CREATE INDEX command_targets_via ON command_targets (via, state);

CREATE TABLE command_output (
  command_id text NOT NULL,
  host text NOT NULL,
  seq bigint NOT NULL,
  channel smallint NOT NULL,
  data bytea NOT NULL,
  emitted_at timestamptz NOT NULL,
  PRIMARY KEY (command_id, host, seq),
  FOREIGN KEY (command_id, host) REFERENCES command_targets (command_id, host) ON DELETE CASCADE
);

-- Cold storage: audit rows older than router.audit-retention move here.
CREATE TABLE commands_archive (LIKE commands INCLUDING DEFAULTS);
ALTER TABLE commands_archive ADD PRIMARY KEY (id);
CREATE TABLE command_targets_archive (LIKE command_targets INCLUDING DEFAULTS);
CREATE TABLE command_output_archive (LIKE command_output INCLUDING DEFAULTS);
