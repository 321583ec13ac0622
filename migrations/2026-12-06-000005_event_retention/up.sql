-- The highest event id the retention pruner may have deleted (`VIGIL_EVENT_RETENTION_DAYS`):
-- raised in the same transaction as the deletion, so a screen resuming from an id below it
-- is told to reload (`reset`), and a replay that finds it moved past its cursor
-- knows it may have missed events, instead of skipping them silently.
CREATE TABLE event_retention (
    id INTEGER PRIMARY KEY NOT NULL,
    pruned_through BIGINT NOT NULL
);
INSERT INTO event_retention (id, pruned_through) VALUES (1, 0);
