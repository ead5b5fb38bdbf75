-- The TUF update repository: every signed version of every top-level
-- role, and the signing keys (private halves sealed with the KEK; empty
-- when the key is kept offline).
CREATE TABLE tuf_metadata (
  role       TEXT NOT NULL,
  version    INTEGER NOT NULL,
  body       BLOB NOT NULL,
  expires    INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (role, version)
) WITHOUT ROWID;
CREATE TABLE tuf_keys (
  key_id     TEXT PRIMARY KEY,
  role       TEXT NOT NULL,
  public     BLOB NOT NULL,
  sealed     BLOB NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;
