-- notify-svc's id of the notification a message was sent for; it travels on every event.
ALTER TABLE messages ADD COLUMN notification_id TEXT;
