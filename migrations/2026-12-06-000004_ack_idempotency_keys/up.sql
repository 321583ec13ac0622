-- Which acknowledgment (its event number) a caller's `Idempotency-Key` recorded: a client
-- that got no answer retries with the same key and is given the first answer again,
-- instead of a second entry in the audit trail (or a 409 for a resolve that did land).
CREATE TABLE ack_idempotency_keys (
    principal TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    ack_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
);
