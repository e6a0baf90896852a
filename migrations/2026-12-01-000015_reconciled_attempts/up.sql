-- An attempt after an ambiguous outcome that the provider's look-up settled: nothing was sent
-- again.
ALTER TABLE message_attempts DROP CONSTRAINT message_attempts_outcome_check;
ALTER TABLE message_attempts ADD CONSTRAINT message_attempts_outcome_check CHECK (outcome IS NULL
    OR outcome IN ('ACCEPTED', 'RECONCILED', 'PERMANENT_FAILURE', 'TRANSIENT_FAILURE',
                   'RATE_LIMITED', 'AMBIGUOUS'));
