-- Identifies one Vigil deployment (one database). Instances sharing a database share
-- it, and use it to name their Redis channel, so two deployments that share a Redis
-- server never see each other's events. The row is created by the first instance.
CREATE TABLE deployment (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    deployment_id TEXT NOT NULL
);
