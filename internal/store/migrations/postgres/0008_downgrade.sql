-- A deployment an admin allowed to install an older version (signed
-- downgrade instruction in the update repository).
ALTER TABLE deployments ADD COLUMN allow_downgrade BIGINT NOT NULL DEFAULT 0;
