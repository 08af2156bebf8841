-- What AWS Security Hub last accepted for each finding (iam_audit.export.securityhub): the
-- ledger against which each run sends only changes. A row is written only after Security Hub
-- accepted the finding, so whatever was refused or never sent is sent again by the next run.
-- finding is the ASFF document as sent (archiving a vanished resource re-sends it).
CREATE TABLE IF NOT EXISTS aws_policy_securityhub_findings (
    finding_id text PRIMARY KEY,            -- iam-audit/<control logic>/<account>/<resource>
    account_id text NOT NULL,
    control_logic text NOT NULL,
    resource_id text NOT NULL,
    compliance_status text NOT NULL CHECK (compliance_status IN ('PASSED', 'FAILED', 'NOT_AVAILABLE')),
    record_state text NOT NULL CHECK (record_state IN ('ACTIVE', 'ARCHIVED')),
    snapshot_date date NOT NULL,
    run_id text,
    finding jsonb NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS aws_policy_securityhub_findings_date_idx
    ON aws_policy_securityhub_findings (snapshot_date);
