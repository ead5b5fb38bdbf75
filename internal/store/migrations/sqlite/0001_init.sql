CREATE TABLE server_state (
  key   TEXT PRIMARY KEY,
  value BLOB NOT NULL
);

CREATE TABLE groups (
  name        TEXT PRIMARY KEY,
  description TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL
);

CREATE TABLE users (
  id             TEXT PRIMARY KEY,
  username       TEXT NOT NULL UNIQUE,
  password_hash  TEXT NOT NULL,
  totp_secret    TEXT NOT NULL DEFAULT '',
  totp_pending   TEXT NOT NULL DEFAULT '',
  totp_last_step INTEGER NOT NULL DEFAULT 0,
  failed_logins  INTEGER NOT NULL DEFAULT 0,
  locked_until   INTEGER NOT NULL DEFAULT 0,
  disabled       INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  last_login     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE user_grants (
  user_id  TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  role     TEXT NOT NULL,
  grp      TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (user_id, role, grp)
);

CREATE TABLE api_tokens (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL,
  secret_hash BLOB NOT NULL,
  role        TEXT NOT NULL,
  grp         TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  created_by  TEXT NOT NULL,
  expires_at  INTEGER NOT NULL DEFAULT 0,
  last_used   INTEGER NOT NULL DEFAULT 0,
  revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE sessions (
  id          TEXT PRIMARY KEY,
  secret_hash BLOB NOT NULL,
  user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf        TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  expires_at  INTEGER NOT NULL,
  remote      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE enroll_tokens (
  id          TEXT PRIMARY KEY,
  name        TEXT NOT NULL DEFAULT '',
  secret_hash BLOB NOT NULL,
  grp         TEXT NOT NULL DEFAULT '',
  max_uses    INTEGER NOT NULL,
  used        INTEGER NOT NULL DEFAULT 0,
  expires_at  INTEGER NOT NULL,
  created_at  INTEGER NOT NULL,
  created_by  TEXT NOT NULL,
  revoked     INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE devices (
  id             TEXT PRIMARY KEY,
  status         TEXT NOT NULL,
  grp            TEXT NOT NULL DEFAULT '',
  hostname       TEXT NOT NULL DEFAULT '',
  key_assurance  TEXT NOT NULL DEFAULT 'software',
  cert_serial    TEXT NOT NULL,
  cert_not_before INTEGER NOT NULL,
  cert_not_after INTEGER NOT NULL,
  cert_pem       TEXT NOT NULL,
  enrolled_at    INTEGER NOT NULL,
  enroll_token   TEXT NOT NULL DEFAULT '',
  last_seen      INTEGER NOT NULL DEFAULT 0,
  health_status  TEXT NOT NULL DEFAULT '',
  inventory      TEXT NOT NULL DEFAULT '',
  health         TEXT NOT NULL DEFAULT '',
  revoked_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX devices_grp ON devices(grp);
CREATE INDEX devices_hostname ON devices(hostname);

CREATE TABLE device_certs (
  serial     TEXT PRIMARY KEY,
  device_id  TEXT NOT NULL REFERENCES devices(id),
  not_before INTEGER NOT NULL,
  not_after  INTEGER NOT NULL,
  issued_at  INTEGER NOT NULL,
  revoked_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX device_certs_device ON device_certs(device_id);

CREATE TABLE commands (
  id           TEXT PRIMARY KEY,
  device_id    TEXT NOT NULL REFERENCES devices(id),
  kind         TEXT NOT NULL,
  payload      TEXT NOT NULL DEFAULT '',
  status       TEXT NOT NULL,
  detail       TEXT NOT NULL DEFAULT '',
  created_at   INTEGER NOT NULL,
  created_by   TEXT NOT NULL,
  delivered_at INTEGER NOT NULL DEFAULT 0,
  acked_at     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX commands_pending ON commands(device_id, status);

CREATE TABLE audit_head (
  id   INTEGER PRIMARY KEY CHECK (id = 1),
  seq  INTEGER NOT NULL,
  hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '');

CREATE TABLE audit_log (
  seq       INTEGER PRIMARY KEY,
  ts        INTEGER NOT NULL,
  actor     TEXT NOT NULL,
  action    TEXT NOT NULL,
  target    TEXT NOT NULL DEFAULT '',
  detail    TEXT NOT NULL DEFAULT '',
  remote    TEXT NOT NULL DEFAULT '',
  outcome   TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash      TEXT NOT NULL
);
CREATE INDEX audit_target ON audit_log(target);
