-- How many unfinished captures each subscription has in each region, kept as one counter row
-- instead of counted: every create checks the 10,000 limit (core/captures.c), and counting
-- the partial index took up to half of the writer's time at 10,000 unfinished captures.
-- Kept exact by db/capture.c (insert, update of unfinished, delete) and db/watcher.c (the
-- delete that cascades to a watcher's captures), in the transaction of the change itself;
-- plain statements rather than triggers, so that the PostgreSQL backend does the same.
CREATE TABLE capture_quota (
    sub_key    TEXT    NOT NULL,
    region     TEXT    NOT NULL,
    unfinished INTEGER NOT NULL,
    PRIMARY KEY (sub_key, region)
);
INSERT INTO capture_quota (sub_key, region, unfinished)
    SELECT sub_key, region, count(*) FROM packet_captures WHERE unfinished = 1
    GROUP BY sub_key, region;
