DROP INDEX IF EXISTS messages_sandbox_sent_idx;
