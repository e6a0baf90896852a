-- The SANDBOX provider's delivery reports are due from sent_at on: this index finds them.
CREATE INDEX messages_sandbox_sent_idx ON messages (sent_at)
    WHERE status = 'SENT' AND provider_kind = 'SANDBOX';
