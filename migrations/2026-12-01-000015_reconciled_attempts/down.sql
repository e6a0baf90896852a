UPDATE message_attempts SET outcome = 'ACCEPTED' WHERE outcome = 'RECONCILED';
ALTER TABLE message_attempts DROP CONSTRAINT message_attempts_outcome_check;
ALTER TABLE message_attempts ADD CONSTRAINT message_attempts_outcome_check CHECK (outcome IS NULL
    OR outcome IN ('ACCEPTED', 'PERMANENT_FAILURE', 'TRANSIENT_FAILURE', 'RATE_LIMITED',
                   'AMBIGUOUS'));
