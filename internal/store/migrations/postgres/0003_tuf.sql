-- The TUF update repository: every signed version of every top-level
-- role, and the signing keys (private halves sealed with the KEK; empty
-- when the key is kept offline).
CREATE TABLE tuf_metadata (
  role       TEXT NOT NULL,
  version    BIGINT NOT NULL,
  body       BYTEA NOT NULL,
  expires    BIGINT NOT NULL,
  created_at BIGINT NOT NULL,
  PRIMARY KEY (role, version)
);
CREATE TABLE tuf_keys (
  key_id     TEXT PRIMARY KEY,
  role       TEXT NOT NULL,
  public     BYTEA NOT NULL,
  sealed     BYTEA NOT NULL,
  created_at BIGINT NOT NULL
);
