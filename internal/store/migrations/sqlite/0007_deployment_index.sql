-- Stage progress is checked on every update report: find unfinished
-- devices of a deployment without scanning it.
CREATE INDEX deployment_devices_progress ON deployment_devices(deployment_id, status, rank);
