-- An accepted attempt keeps the price the provider reported, so that its outcome can be settled
-- from the attempt alone when the message's own update did not commit.
ALTER TABLE message_attempts ADD COLUMN cost_usd_micros BIGINT;
