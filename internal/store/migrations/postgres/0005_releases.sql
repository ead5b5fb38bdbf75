-- Releases: artifacts published into the update repository, one version
-- per product at a time, versions increasing.
CREATE TABLE releases (
  id          TEXT PRIMARY KEY,
  product     TEXT NOT NULL,
  version     TEXT NOT NULL,
  target      TEXT NOT NULL UNIQUE,
  length      BIGINT NOT NULL,
  sha256      TEXT NOT NULL,
  sha512      TEXT NOT NULL,
  installer   TEXT NOT NULL,
  hardware    TEXT NOT NULL DEFAULT '',
  fixes       TEXT NOT NULL DEFAULT '',
  severity    TEXT NOT NULL DEFAULT '',
  sbom_sha256 TEXT NOT NULL DEFAULT '',
  created_at  BIGINT NOT NULL,
  created_by  TEXT NOT NULL,
  UNIQUE (product, version)
);

-- The lowest version a device may run or install, per product.
CREATE TABLE version_floors (
  product     TEXT PRIMARY KEY,
  min_version TEXT NOT NULL,
  updated_at  BIGINT NOT NULL,
  updated_by  TEXT NOT NULL
);
