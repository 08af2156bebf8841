-- The control catalogue (loaded from sql/catalogue.yaml) and the verdicts table
-- that BI tools read. aws_policy_results is part of the public contract:
-- extend it, never rename its columns.
CREATE TABLE IF NOT EXISTS aws_policy_controls (
    framework text NOT NULL,
    check_id text NOT NULL,
    logic text,                        -- sql/checks/<logic>.sql; NULL for manual controls
    title text NOT NULL,
    severity text NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low')),
    level text,
    assessment text NOT NULL CHECK (assessment IN ('automated', 'manual')),
    params jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (framework, check_id)
);
CREATE INDEX IF NOT EXISTS aws_policy_controls_logic_idx ON aws_policy_controls (logic);

CREATE TABLE IF NOT EXISTS aws_policy_results (
    snapshot_date date NOT NULL,
    framework text NOT NULL,
    check_id text NOT NULL,
    title text NOT NULL,
    severity text NOT NULL,
    account_id text NOT NULL,
    resource_id text NOT NULL,
    resource_type text,
    status text NOT NULL CHECK (status IN ('pass', 'fail', 'error')),
    reason text NOT NULL,
    run_id text,
    evaluated_at timestamptz NOT NULL DEFAULT now(),
    control_logic text,
    CONSTRAINT aws_policy_results_key
        UNIQUE (snapshot_date, framework, check_id, account_id, resource_id)
);
CREATE INDEX IF NOT EXISTS aws_policy_results_status_idx
    ON aws_policy_results (snapshot_date, status);
