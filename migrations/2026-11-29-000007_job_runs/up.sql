-- One row per job slot: the insert that creates it is the claim, so a slot runs once across
-- replicas.
CREATE TABLE job_runs (
    name         text NOT NULL,
    slot         timestamptz NOT NULL,
    owner        text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,
    outcome      text NOT NULL DEFAULT 'RUNNING',
    counts       jsonb NOT NULL DEFAULT '{}',
    error        text,
    PRIMARY KEY (name, slot),
    CONSTRAINT job_runs_outcome_check CHECK (outcome IN ('RUNNING', 'OK', 'FAILED'))
);
CREATE INDEX job_runs_started_idx ON job_runs (started_at);
