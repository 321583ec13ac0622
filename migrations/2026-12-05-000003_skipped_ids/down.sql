DROP TABLE skipped_ids;
