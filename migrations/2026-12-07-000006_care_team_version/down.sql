ALTER TABLE events DROP COLUMN care_team_version;
ALTER TABLE event_head DROP COLUMN care_team_version;
