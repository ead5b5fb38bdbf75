-- Indicators of compromise (Code of Practice guideline 10.2). A source is
-- one imported file or one polled feed (kind stix, misp, list, taxii or
-- misp-feed); its indicators are replaced as a whole on every import or
-- poll, in one transaction. version counts those replacements, so a server
-- sees cheaply which sources changed. poll_interval is the poll interval of a
-- feed in seconds (0 for imported files); default_expiry (seconds, 0 for
-- none) applies to indicators that carry no expiry of their own. Times are
-- Unix microseconds; 0 means unset.
CREATE TABLE ioc_sources (
  name           TEXT PRIMARY KEY,
  kind           TEXT NOT NULL,
  url            TEXT NOT NULL DEFAULT '',
  collection     TEXT NOT NULL DEFAULT '',
  poll_interval  INTEGER NOT NULL DEFAULT 0,
  default_expiry INTEGER NOT NULL DEFAULT 0,
  version        INTEGER NOT NULL DEFAULT 0,
  indicators     INTEGER NOT NULL DEFAULT 0,
  skipped        INTEGER NOT NULL DEFAULT 0,
  created_at     INTEGER NOT NULL,
  created_by     TEXT NOT NULL DEFAULT '',
  updated_at     INTEGER NOT NULL DEFAULT 0,
  last_poll      INTEGER NOT NULL DEFAULT 0,
  next_poll      INTEGER NOT NULL DEFAULT 0,
  failures       INTEGER NOT NULL DEFAULT 0,
  last_error     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX ioc_sources_next_poll ON ioc_sources(next_poll) WHERE poll_interval > 0;

-- The indicators of each source, normalised as by internal/ioc. ref is the
-- indicator's id in its source (STIX id, MISP attribute uuid).
CREATE TABLE ioc_indicators (
  source  TEXT NOT NULL REFERENCES ioc_sources(name) ON DELETE CASCADE,
  type    TEXT NOT NULL,
  value   TEXT NOT NULL,
  ref     TEXT NOT NULL DEFAULT '',
  expires INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX ioc_indicators_source ON ioc_indicators(source, type, value);
CREATE INDEX ioc_indicators_expires ON ioc_indicators(expires) WHERE expires > 0;
