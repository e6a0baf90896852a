DROP TABLE consumed_events;
