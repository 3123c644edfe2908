-- Core tables: settings, users and roles, hosts and host groups.

CREATE TABLE mirror_settings (
  key text PRIMARY KEY,
  value text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE roles (
  name text PRIMARY KEY,
  description text NOT NULL DEFAULT ''
);

INSERT INTO roles (name, description) VALUES
  ('admin', 'everything, including users, roles and credentials'),
  ('operator', 'runs commands allowed by the rules on the groups they cover'),
  ('viewer', 'reads hosts, metrics, alerts and the twin; runs nothing');

CREATE TABLE users (
  id bigserial PRIMARY KEY,
  name text NOT NULL UNIQUE,
  display_name text NOT NULL DEFAULT '',
  -- The NATS user this person or tool connects as: the identity a client
  -- cannot forge.
  nats_user text UNIQUE,
  -- Ed25519 public key (raw 32 bytes) for signed requests, optional.
  public_key bytea,
  disabled boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE user_roles (
  user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role text NOT NULL REFERENCES roles (name),
  PRIMARY KEY (user_id, role)
);

CREATE TABLE hosts (
  name text PRIMARY KEY,
  machine_id text NOT NULL DEFAULT '',
  boot_id text NOT NULL DEFAULT '',
  os_name text NOT NULL DEFAULT '',
  os_version text NOT NULL DEFAULT '',
  kernel text NOT NULL DEFAULT '',
  architecture text NOT NULL DEFAULT '',
  cpu_model text NOT NULL DEFAULT '',
  cpu_cores integer NOT NULL DEFAULT 0,
  memory_total_bytes bigint NOT NULL DEFAULT 0,
  agent_version text NOT NULL DEFAULT '',
  primary_interface text NOT NULL DEFAULT '',
  primary_interface_speed_mbps integer,
  addresses text[] NOT NULL DEFAULT '{}',
  mac_addresses text[] NOT NULL DEFAULT '{}',
  labels jsonb NOT NULL DEFAULT '{}',
  interval_ms integer NOT NULL DEFAULT 5000,
  -- The last HostInfo as received (protobuf), so nothing reported is lost.
  info bytea,
  registered_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  last_seen_at timestamptz
);

CREATE TABLE host_groups (
  name text PRIMARY KEY,
  description text NOT NULL DEFAULT '',
  -- Hosts whose labels contain all of these belong to the group, besides
  -- the explicit members.
  selector jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE host_group_members (
  group_name text NOT NULL REFERENCES host_groups (name) ON DELETE CASCADE,
  host text NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
  PRIMARY KEY (group_name, host)
);

CREATE INDEX host_group_members_host ON host_group_members (host);
