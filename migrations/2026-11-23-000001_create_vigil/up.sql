-- Vigil's first schema. The same SQL runs on SQLite and PostgreSQL: only types both
-- share (TEXT, BIGINT, INTEGER); times are epoch milliseconds.

-- One row. Every write transaction first updates it: that serialises writers (on
-- both backends) and hands out the next event sequence number, so sequence order is
-- commit order and the log has no holes.
CREATE TABLE event_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);
INSERT INTO event_head (id, seq) VALUES (1, 0);

-- Append-only fan-out log: one row per alert raised and per acknowledgment.
-- `seq` is the SSE `id:`; `payload` is the event's `data:` JSON, frozen at the time.
CREATE TABLE events (
    seq BIGINT PRIMARY KEY NOT NULL,
    kind TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    patient_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_patient_seq ON events (patient_id, seq);

CREATE TABLE alerts (
    id TEXT PRIMARY KEY NOT NULL,
    seq BIGINT NOT NULL UNIQUE,
    last_seq BIGINT NOT NULL,
    patient_id TEXT NOT NULL,
    severity TEXT NOT NULL,
    kind TEXT NOT NULL,
    title TEXT NOT NULL,
    message TEXT NOT NULL,
    data TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    request_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alerts_patient_seq ON alerts (patient_id, seq);
CREATE INDEX alerts_last_seq ON alerts (last_seq);

-- Audit trail: every acknowledgment is kept; `seq` is the event it produced.
CREATE TABLE acknowledgments (
    seq BIGINT PRIMARY KEY NOT NULL,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    user_id TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX acknowledgments_alert ON acknowledgments (alert_id, seq);

CREATE TABLE care_team (
    patient_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (patient_id, user_id)
);
CREATE INDEX care_team_user ON care_team (user_id);

-- Producers retry; the same (caller, key) returns the same alert.
CREATE TABLE idempotency_keys (
    principal TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (principal, idem_key)
);
