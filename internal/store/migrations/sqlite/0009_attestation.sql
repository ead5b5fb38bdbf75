-- Hardware-backed identity and attestation (Code of Practice 2.6, 2.7, 4, 5).

-- trust is the server's trust in the device: 'trusted', 'untrusted' or
-- 'quarantined' (after a failed attestation and the configured action).
ALTER TABLE devices ADD COLUMN trust TEXT NOT NULL DEFAULT 'trusted';

-- The TPM of a device enrolled with one: its endorsement key (hash, PKIX
-- DER and certificate, base64) and attestation key (TPMT_PUBLIC, base64).
CREATE TABLE device_tpm (
  device_id         TEXT PRIMARY KEY REFERENCES devices(id),
  ek_hash           TEXT NOT NULL,
  ek_public         TEXT NOT NULL,
  ek_cert           TEXT NOT NULL DEFAULT '',
  ek_manufacturer   TEXT NOT NULL DEFAULT '',
  ak_public         TEXT NOT NULL,
  enrolled_at       INTEGER NOT NULL,
  last_quote_digest TEXT NOT NULL DEFAULT '',
  last_attested_at  INTEGER NOT NULL DEFAULT 0,
  attest_requested_at INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX device_tpm_ek ON device_tpm(ek_hash);

-- Every appraisal of a device's evidence. result is the JSON of
-- api.AttestationResult (including the signed EAR).
CREATE TABLE attestation_results (
  id        TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  at        INTEGER NOT NULL,
  status    TEXT NOT NULL,
  result    TEXT NOT NULL
);
CREATE INDEX attestation_results_device ON attestation_results(device_id, at);

-- The reference a device's measurements are compared with: a baseline
-- captured at enrolment (used once an admin approves it) or the maker's
-- signed manifest for the installed release. reference is JSON.
CREATE TABLE attestation_references (
  device_id   TEXT PRIMARY KEY,
  source      TEXT NOT NULL,
  reference   TEXT NOT NULL,
  captured_at INTEGER NOT NULL,
  approved_by TEXT NOT NULL DEFAULT '',
  approved_at INTEGER NOT NULL DEFAULT 0
);

-- Signed health reports, kept so that anyone can re-verify them against
-- the device certificate (the server cannot forge them).
CREATE TABLE health_reports (
  device_id TEXT NOT NULL,
  at        INTEGER NOT NULL,
  status    TEXT NOT NULL,
  report    TEXT NOT NULL,
  signature TEXT NOT NULL,
  PRIMARY KEY (device_id, at)
);

-- Zero-touch enrolment: endorsement keys registered in advance (by the
-- maker's manifest or an admin) enrol into a group without a token.
CREATE TABLE ek_registrations (
  ek_hash    TEXT PRIMARY KEY,
  grp        TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  device_id  TEXT NOT NULL DEFAULT ''
);
