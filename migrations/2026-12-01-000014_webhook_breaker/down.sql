ALTER TABLE webhooks
  DROP COLUMN consecutive_failures,
  DROP COLUMN failing_since,
  DROP COLUMN paused_until,
  DROP COLUMN disabled_at,
  DROP COLUMN disabled_reason;
