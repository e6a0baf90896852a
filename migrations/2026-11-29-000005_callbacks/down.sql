DROP TABLE provider_callback_events;
DROP TABLE provider_callbacks;
