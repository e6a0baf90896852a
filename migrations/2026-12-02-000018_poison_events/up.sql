-- A consumed event that could not be handled (not a CloudEvent, or failing every attempt) is
-- recorded as outcome 'poison' with what arrived, then skipped: it is never redelivered for
-- ever, and it can be looked at and replayed by hand.
ALTER TABLE consumed_events ADD COLUMN payload text;
CREATE INDEX consumed_events_poison_idx ON consumed_events (consumed_at) WHERE outcome = 'poison';
