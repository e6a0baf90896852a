-- Cross-channel fallback chains. A send with `fallback` is a chain: its message is step 0 and
-- each further step is a row here until it becomes a message of its own (or is refused,
-- cancelled, or not needed because an earlier step was delivered).
ALTER TABLE messages ADD COLUMN chain_id uuid;
CREATE INDEX messages_chain_idx ON messages (chain_id) WHERE chain_id IS NOT NULL;

CREATE TABLE message_chain_steps (
    -- The id of the chain's first message.
    chain_id uuid NOT NULL,
    step smallint NOT NULL CHECK (step BETWEEN 0 AND 3),
    tenant_id uuid NOT NULL,
    channel text NOT NULL,
    -- PENDING (not created yet), STARTED (its message exists), REFUSED (its checks refused it
    -- when it was due), CANCELLED, SKIPPED (an earlier step was delivered).
    state text NOT NULL,
    message_id uuid,
    -- What the step sends (recipient and rendered content), for steps after the first.
    spec jsonb,
    -- How long the step before it has to reach DELIVERED before this one is started anyway.
    after_secs integer,
    -- The plan tier the chain was accepted under: each step is checked against it.
    plan_tier text NOT NULL,
    -- PENDING with after_secs, once the step before exists: when this one is started anyway.
    due_at timestamptz,
    -- Why the step was started, or what refused it.
    reason text,
    error_code text,
    error_message text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (chain_id, step)
);
CREATE INDEX message_chain_steps_due_idx ON message_chain_steps (due_at)
    WHERE state = 'PENDING' AND due_at IS NOT NULL;
