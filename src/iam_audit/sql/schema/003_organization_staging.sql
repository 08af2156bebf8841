-- Organisation-level data sets (src/iam_audit/ingest/organization.py), one row set per
-- snapshot date, replaced as a whole when the date is loaded. Collected once per run
-- with the discovery credentials; read by the checks (through
-- iam_audit_account_readiness, like account data sets) and by aws_policy_manual_evidence.

-- Whether each organisation data set was collected for the date ('error': refused,
-- not collected, malformed; checks needing it then write 'error' verdicts).
CREATE TABLE IF NOT EXISTS iam_stage.organization_datasets (
    snapshot_date date NOT NULL,
    dataset text NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'error')),
    error_code text,
    error_message text,
    collected_at timestamptz,
    PRIMARY KEY (snapshot_date, dataset)
);

-- organizations:DescribeOrganization
CREATE TABLE IF NOT EXISTS iam_stage.organization_info (
    snapshot_date date PRIMARY KEY,
    organization_id text,
    management_account_id text,
    feature_set text
);

-- iam:ListOrganizationsFeatures: one row per enabled feature (RootCredentialsManagement,
-- RootSessions); one row with feature NULL when the call answered and none is enabled.
CREATE TABLE IF NOT EXISTS iam_stage.organization_features (
    snapshot_date date NOT NULL,
    organization_id text,
    feature text
);
CREATE INDEX IF NOT EXISTS organization_features_date_idx ON iam_stage.organization_features (snapshot_date);

-- The OU tree: every root, OU and account with its parent (NULL for a root).
CREATE TABLE IF NOT EXISTS iam_stage.organization_parents (
    snapshot_date date NOT NULL,
    child_id text NOT NULL,
    child_type text NOT NULL CHECK (child_type IN ('ROOT', 'ORGANIZATIONAL_UNIT', 'ACCOUNT')),
    child_name text,
    parent_id text,
    PRIMARY KEY (snapshot_date, child_id)
);

-- SCPs and RCPs (organizations:ListPolicies) and where each is attached (ListTargetsForPolicy).
CREATE TABLE IF NOT EXISTS iam_stage.organization_policies (
    snapshot_date date NOT NULL,
    policy_id text NOT NULL,
    policy_type text NOT NULL CHECK (policy_type IN ('SERVICE_CONTROL_POLICY', 'RESOURCE_CONTROL_POLICY')),
    policy_name text,
    aws_managed boolean,
    PRIMARY KEY (snapshot_date, policy_id)
);
CREATE TABLE IF NOT EXISTS iam_stage.organization_policy_targets (
    snapshot_date date NOT NULL,
    policy_id text NOT NULL,
    target_id text NOT NULL,
    target_type text,
    target_name text,
    PRIMARY KEY (snapshot_date, policy_id, target_id)
);

-- Delegated administrators (ListDelegatedAdministrators, ListDelegatedServicesForAccount) and
-- the principals of the Organizations delegation policy (DescribeResourcePolicy).
CREATE TABLE IF NOT EXISTS iam_stage.organization_delegated_admins (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    account_name text,
    service_principal text NOT NULL,
    delegation_enabled_date timestamptz,
    PRIMARY KEY (snapshot_date, account_id, service_principal)
);
CREATE TABLE IF NOT EXISTS iam_stage.organization_delegation_policy (
    snapshot_date date NOT NULL,
    principal text NOT NULL,
    PRIMARY KEY (snapshot_date, principal)
);
