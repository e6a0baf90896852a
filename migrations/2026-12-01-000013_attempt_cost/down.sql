ALTER TABLE message_attempts DROP COLUMN cost_usd_micros;
