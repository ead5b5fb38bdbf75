-- Reference values a maker publishes with a release (Code of Practice 4.2,
-- 5.4): the expected PCRs of a device booting it and the hashes of the
-- files it ships. manifest is the attest.ReferenceManifest JSON exactly as
-- uploaded (and signed into the update repository); sha256 is its hex
-- SHA-256. One per release; it goes with its release.
CREATE TABLE reference_manifests (
  product    TEXT NOT NULL,
  version    TEXT NOT NULL,
  manifest   TEXT NOT NULL,
  sha256     TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  PRIMARY KEY (product, version),
  FOREIGN KEY (product, version) REFERENCES releases (product, version) ON DELETE CASCADE
);
