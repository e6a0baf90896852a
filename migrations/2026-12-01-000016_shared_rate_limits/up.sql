-- Rate limits shared by every replica: one GCRA bucket per key (a tenant's channel, a
-- provider's pacing). `tat` is the bucket's theoretical arrival time; `granted` is what the
-- last request on the key was given. UNLOGGED: a bucket lost in a crash only starts full.
-- No index but the key's: every request updates its row, and an update that touches no
-- indexed column stays on its page (HOT), so a busy bucket does not bloat.
CREATE UNLOGGED TABLE rate_limit_buckets (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL,
    granted integer NOT NULL DEFAULT 0
);
