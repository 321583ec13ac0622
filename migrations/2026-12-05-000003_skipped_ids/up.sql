-- Ids `vigil migrate --skip-ids` moved the log's head past, as (after_seq, upto_seq]:
-- never issued by this log. A screen resuming from one holds an id of a timeline that a
-- restored backup lost, so it gets `reset` (and reloads) instead of a replay.
CREATE TABLE skipped_ids (
    after_seq BIGINT PRIMARY KEY NOT NULL,
    upto_seq BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
