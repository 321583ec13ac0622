DROP TABLE idempotency_keys;
DROP TABLE care_team;
DROP TABLE acknowledgments;
DROP TABLE alerts;
DROP TABLE events;
DROP TABLE event_head;
