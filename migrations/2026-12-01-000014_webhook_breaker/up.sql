-- A breaker per webhook: consecutive failed POSTs, since when it has been failing, until when
-- its deliveries are held back, and when (and why) it was disabled for failing too long.
ALTER TABLE webhooks
  ADD COLUMN consecutive_failures INT NOT NULL DEFAULT 0,
  ADD COLUMN failing_since TIMESTAMPTZ,
  ADD COLUMN paused_until TIMESTAMPTZ,
  ADD COLUMN disabled_at TIMESTAMPTZ,
  ADD COLUMN disabled_reason TEXT;
