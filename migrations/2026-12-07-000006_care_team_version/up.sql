-- The care teams' place in the event log. Every care-team change moves
-- `event_head.care_team_version` on by one, under the head's lock, and every event records
-- the version its write saw: an instance that meets an event stamped with a version
-- it has not applied yet (a change made on another instance moments before, not yet
-- heard of over Redis) holds the event back and reads the care teams first, instead of
-- matching it under the old team.
ALTER TABLE event_head ADD COLUMN care_team_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN care_team_version BIGINT NOT NULL DEFAULT 0;
