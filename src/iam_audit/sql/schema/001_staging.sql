-- Staging tables: one row set per (snapshot_date, account_id), replaced as a whole
-- by the loader in one transaction. Values the credential report writes as
-- 'N/A', 'no_information' or 'not_supported' are stored as NULL; the raw report
-- stays in S3.
CREATE SCHEMA IF NOT EXISTS iam_stage;

CREATE TABLE IF NOT EXISTS iam_stage.accounts (
    snapshot_date date NOT NULL,
    account_id text NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    account_name text,
    account_email text,
    extracted_at timestamptz NOT NULL,
    run_id text,
    raw_prefix text,
    loaded_at timestamptz NOT NULL DEFAULT now(),
    load_error text,                   -- set: the raw snapshot could not be loaded (no data rows)
    PRIMARY KEY (snapshot_date, account_id)
);
ALTER TABLE iam_stage.accounts ADD COLUMN IF NOT EXISTS load_error text;

-- The organisation's member accounts as discovered for the snapshot (all of
-- them, not only the audited subset): "inside the organisation" for trust checks.
CREATE TABLE IF NOT EXISTS iam_stage.organization_accounts (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    account_name text,
    status text,
    PRIMARY KEY (snapshot_date, account_id)
);

-- One row per account and data set: whether it was collected. Checks emit
-- 'error' verdicts for accounts whose needed data sets are not 'ok'.
CREATE TABLE IF NOT EXISTS iam_stage.extraction_status (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    dataset text NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'error')),
    error_code text,
    error_message text,
    row_count integer,
    PRIMARY KEY (snapshot_date, account_id, dataset)
);

CREATE TABLE IF NOT EXISTS iam_stage.credential_report (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    user_name text NOT NULL,
    arn text NOT NULL,
    is_root boolean NOT NULL,
    generated_time timestamptz,
    user_creation_time timestamptz,
    password_enabled boolean,          -- root: NULL ('not_supported'), false once root credentials are removed
    password_last_used timestamptz,    -- NULL: never used / no password
    password_last_changed timestamptz,
    password_next_rotation timestamptz,
    mfa_active boolean,
    access_key_1_active boolean,
    access_key_1_last_rotated timestamptz,
    access_key_1_last_used_date timestamptz,
    access_key_1_last_used_region text,
    access_key_1_last_used_service text,
    access_key_2_active boolean,
    access_key_2_last_rotated timestamptz,
    access_key_2_last_used_date timestamptz,
    access_key_2_last_used_region text,
    access_key_2_last_used_service text,
    cert_1_active boolean,
    cert_1_last_rotated timestamptz,
    cert_2_active boolean,
    cert_2_last_rotated timestamptz,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.users (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    user_name text NOT NULL,
    user_id text,
    path text,
    create_date timestamptz,
    permissions_boundary_arn text,
    tags jsonb,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.groups (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    group_name text NOT NULL,
    group_id text,
    path text,
    create_date timestamptz,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.group_memberships (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    user_arn text NOT NULL,
    group_name text NOT NULL,
    PRIMARY KEY (snapshot_date, account_id, user_arn, group_name)
);

CREATE TABLE IF NOT EXISTS iam_stage.roles (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    role_name text NOT NULL,
    role_id text,
    path text,
    create_date timestamptz,
    assume_role_policy jsonb,
    role_last_used_date timestamptz,
    role_last_used_region text,
    permissions_boundary_arn text,
    tags jsonb,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

-- Customer-managed policies, and AWS-managed policies attached to something.
CREATE TABLE IF NOT EXISTS iam_stage.managed_policies (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    policy_name text NOT NULL,
    policy_id text,
    path text,
    is_aws_managed boolean NOT NULL,
    attachment_count integer,
    permissions_boundary_usage_count integer,
    is_attachable boolean,
    default_version_id text,
    create_date timestamptz,
    update_date timestamptz,
    document jsonb,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.policy_attachments (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    entity_type text NOT NULL CHECK (entity_type IN ('user', 'group', 'role')),
    entity_arn text NOT NULL,
    entity_name text NOT NULL,
    policy_arn text NOT NULL,
    policy_name text,
    PRIMARY KEY (snapshot_date, account_id, entity_arn, policy_arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.inline_policies (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    entity_type text NOT NULL CHECK (entity_type IN ('user', 'group', 'role')),
    entity_arn text NOT NULL,
    entity_name text NOT NULL,
    policy_name text NOT NULL,
    document jsonb,
    PRIMARY KEY (snapshot_date, account_id, entity_arn, policy_name)
);

CREATE TABLE IF NOT EXISTS iam_stage.password_policy (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    has_policy boolean NOT NULL,       -- false: GetAccountPasswordPolicy said NoSuchEntity
    minimum_password_length integer,
    require_symbols boolean,
    require_numbers boolean,
    require_uppercase_characters boolean,
    require_lowercase_characters boolean,
    allow_users_to_change_password boolean,
    expire_passwords boolean,
    max_password_age integer,
    password_reuse_prevention integer,
    hard_expiry boolean,
    PRIMARY KEY (snapshot_date, account_id)
);

CREATE TABLE IF NOT EXISTS iam_stage.account_summary (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    account_mfa_enabled integer,
    account_access_keys_present integer,
    summary jsonb NOT NULL,
    PRIMARY KEY (snapshot_date, account_id)
);
-- AccountPasswordPresent (1: root has a console password, 0: none, e.g. removed
-- by centralized root access). NULL: the response had no such key (older
-- snapshots, emulators), which is unknown, not "no password".
ALTER TABLE iam_stage.account_summary ADD COLUMN IF NOT EXISTS account_password_present integer;

CREATE TABLE IF NOT EXISTS iam_stage.virtual_mfa_devices (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    serial_number text NOT NULL,
    user_arn text,
    user_name text,
    enable_date timestamptz,
    PRIMARY KEY (snapshot_date, account_id, serial_number)
);

CREATE TABLE IF NOT EXISTS iam_stage.access_keys (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    user_name text NOT NULL,
    user_arn text NOT NULL,
    access_key_id text NOT NULL,
    status text NOT NULL,
    create_date timestamptz,
    last_used_date timestamptz,
    last_used_region text,
    last_used_service text,
    PRIMARY KEY (snapshot_date, account_id, access_key_id)
);

CREATE TABLE IF NOT EXISTS iam_stage.server_certificates (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    certificate_name text NOT NULL,
    certificate_id text,
    path text,
    upload_date timestamptz,
    expiration timestamptz,
    PRIMARY KEY (snapshot_date, account_id, arn)
);

CREATE TABLE IF NOT EXISTS iam_stage.regions (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    region_name text NOT NULL,
    opt_in_status text,
    PRIMARY KEY (snapshot_date, account_id, region_name)
);

CREATE TABLE IF NOT EXISTS iam_stage.access_analyzers (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    region_name text NOT NULL,
    analyzer_arn text NOT NULL,
    analyzer_name text,
    analyzer_type text,
    status text,
    PRIMARY KEY (snapshot_date, account_id, analyzer_arn)
);

-- Per enabled region: whether ListAnalyzers could be read there ('ok'), or why not
-- ('error': a region-deny SCP answers AccessDeniedException).
CREATE TABLE IF NOT EXISTS iam_stage.access_analyzer_regions (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    region_name text NOT NULL,
    status text NOT NULL CHECK (status IN ('ok', 'error')),
    error_code text,
    error_message text,
    analyzer_count integer,
    PRIMARY KEY (snapshot_date, account_id, region_name)
);

CREATE TABLE IF NOT EXISTS iam_stage.alternate_contacts (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    contact_type text NOT NULL,
    is_set boolean NOT NULL,
    contact_name text,
    email_address text,
    title text,
    PRIMARY KEY (snapshot_date, account_id, contact_type)
);

CREATE TABLE IF NOT EXISTS iam_stage.identity_providers (
    snapshot_date date NOT NULL,
    account_id text NOT NULL,
    arn text NOT NULL,
    provider_type text NOT NULL CHECK (provider_type IN ('saml', 'oidc')),
    create_date timestamptz,
    valid_until timestamptz,
    PRIMARY KEY (snapshot_date, account_id, arn)
);
