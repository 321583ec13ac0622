DROP TABLE event_retention;
