-- Security events: forwarded from device journals (source 'device', with
-- the journal's seq, prev_hash and hash) or raised by the server about a
-- device's journal (source 'server', seq 0). id orders events by arrival;
-- data is the event envelope as the device sent it, without server_time,
-- which is kept in its own column (Unix microseconds, like device_time).
CREATE TABLE events (
  id          INTEGER PRIMARY KEY,
  device_id   TEXT NOT NULL,
  seq         INTEGER NOT NULL,
  source      TEXT NOT NULL,
  type        TEXT NOT NULL,
  severity_id INTEGER NOT NULL,
  device_time INTEGER NOT NULL,
  server_time INTEGER NOT NULL,
  prev_hash   TEXT NOT NULL DEFAULT '',
  hash        TEXT NOT NULL DEFAULT '',
  data        TEXT NOT NULL
);
-- A resent record is stored once.
CREATE UNIQUE INDEX events_device_seq ON events(device_id, seq) WHERE seq > 0;
CREATE INDEX events_server_time ON events(server_time);

-- The head of each device's chain as stored: the next record must link to
-- last_hash with seq last_seq+1. The newest verified signed checkpoint.
CREATE TABLE event_heads (
  device_id       TEXT PRIMARY KEY,
  last_seq        INTEGER NOT NULL DEFAULT 0,
  last_hash       TEXT NOT NULL DEFAULT '',
  checkpoint_seq  INTEGER NOT NULL DEFAULT 0,
  checkpoint_hash TEXT NOT NULL DEFAULT '',
  checkpoint_time INTEGER NOT NULL DEFAULT 0,
  updated_at      INTEGER NOT NULL DEFAULT 0
);
