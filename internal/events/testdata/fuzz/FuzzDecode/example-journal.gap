go test fuzz v1
[]byte("{\"schema_version\":\"1\",\"type\":\"journal.gap\",\"class_uid\":9906005,\"class_name\":\"Bulwark Journal Gap\",\"severity_id\":4,\"severity\":\"High\",\"device_id\":\"dev-7f3a9c\",\"seq\":42,\"device_time\":\"2026-11-26T20:00:00Z\",\"server_time\":\"2026-11-26T20:00:01.25Z\",\"details\":{\"from_seq\":1001,\"to_seq\":1480,\"reason\":\"overflow\"}}")
