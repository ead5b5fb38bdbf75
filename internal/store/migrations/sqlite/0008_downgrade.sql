-- A deployment an admin allowed to install an older version (signed
-- downgrade instruction in the update repository).
ALTER TABLE deployments ADD COLUMN allow_downgrade INTEGER NOT NULL DEFAULT 0;
