DROP TABLE ack_idempotency_keys;
