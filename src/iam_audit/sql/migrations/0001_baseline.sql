-- Baseline: the tables, indexes and fixed rows of the layout before versioned
-- migrations. Applied once to a fresh database, and once to a database of any
-- earlier layout (one that has no iam_audit_schema_migrations yet): every statement
-- is written to be a no-op where its object already has its current shape, so such
-- a database reaches the baseline in one step with its data in place. Later
-- migrations (0002 on) are applied exactly once and need not be written that way.

-- ==== staging (iam_stage) =========================================================

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

-- ==== account tags ================================================================

-- The tags of the organisation's accounts as discovered for the snapshot
-- (organizations:ListTagsForResource; tests and alert routing read the
-- security-contact tag). Replaced per snapshot date with the organisation's list;
-- kept with the other staged dates as history.
CREATE TABLE IF NOT EXISTS iam_stage.account_tags (
    snapshot_date date NOT NULL,
    account_id text NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    key text NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (snapshot_date, account_id, key)
);

-- ==== organisation staging ========================================================

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

-- ==== pipeline state and locks ====================================================

-- The fingerprint (SHA-256) of the migrations, sql/functions, sql/views and the catalogue
-- last applied by prepare_database: an unchanged fingerprint means no DDL at all, so a run never
-- waits behind (or makes readers wait behind) a lock it does not need.
CREATE TABLE IF NOT EXISTS iam_audit_schema_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    fingerprint text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Concurrent runs of one snapshot date (scheduler, make run, backfills) must not
-- interleave writes. Their locks are rows of this table, locked for the writer's
-- transaction: the load holds its date's row FOR UPDATE (database.snapshot_date_lock),
-- each check holds it FOR SHARE plus its (date, logic) row FOR UPDATE, and
-- prepare_database holds the row 'schema' FOR UPDATE. Advisory locks, used before, take
-- a predictable key and any role may take them, so a BI login could stall the pipeline;
-- a row lock needs UPDATE on this table, which PUBLIC (and so compliance_reader) lacks.
-- The rows exist beforehand (a row inserted by an open transaction would make every other
-- writer wait for that transaction): dates and (date, logic) pairs hash to a fixed set of
-- slots, so two dates may on rare occasions share one and wait for each other, never more.
CREATE TABLE IF NOT EXISTS iam_audit_locks (
    lock_name text PRIMARY KEY
);
REVOKE ALL ON iam_audit_locks FROM PUBLIC;
INSERT INTO iam_audit_locks (lock_name)
SELECT 'schema'
UNION ALL SELECT 'date ' || n FROM generate_series(0, 255) AS n
UNION ALL SELECT 'check ' || n FROM generate_series(0, 1023) AS n
ON CONFLICT (lock_name) DO NOTHING;
DROP FUNCTION IF EXISTS iam_audit_date_lock_key(date, text);

-- ==== evidence digests ============================================================

-- The SHA-256 of each raw snapshot manifest (and of the organisation's account list) as the
-- live load read it. The manifests' own checksums live in the same bucket as the data and are
-- written by the same principal: whoever can rewrite the data can rewrite them. This table is
-- written only by the pipeline's database role, so a replay compares each manifest with the
-- digest recorded here and refuses one that differs, naming the object.
CREATE TABLE IF NOT EXISTS iam_audit_evidence_digests (
    snapshot_date date NOT NULL,
    object_url text NOT NULL,          -- s3://bucket/key
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    run_id text,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (snapshot_date, object_url)
);
REVOKE ALL ON iam_audit_evidence_digests FROM PUBLIC;

-- ==== control catalogue ===========================================================

-- The control catalogue (loaded from sql/catalogue/). aws_policy_results, the
-- verdicts BI tools read, is part of the public contract: extend it, never rename
-- its columns.
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

-- aws_policy_results is a view over the verdict history (below and
-- sql/views/005_aws_policy_results.sql); databases of the earlier design, where it
-- was a table, are migrated by sql/migrations/0002 and 0003.

-- ==== verdict history =============================================================

-- Verdict history that grows with change.
--
-- A verdict is computed once per control logic and distinct param set (a
-- "variant"), not once per framework, and stored as an interval of the snapshot
-- dates on which a resource kept the same (resource_type, status, reason):
--   aws_policy_variants     (control_logic, params) -> variant_id
--   aws_policy_scopes       per snapshot date, which (framework, check_id) a
--                           variant answered, with the title and severity of
--                           that day's catalogue
--   aws_policy_evaluations  per (snapshot_date, variant, account): the run that
--                           evaluated it, whether the data was complete
--                           (error_reason NULL) and its verdict counts
--   aws_policy_verdicts     intervals: the verdict holds on every date in
--                           [valid_from, valid_to] on which the (variant,
--                           account) has an evaluation with error_reason NULL;
--                           valid_to = 'infinity' while it is still current.
-- A date's rows of aws_policy_results (a view, sql/views/005) are the
-- evaluations of that date x the intervals covering it x the scopes of that
-- date. Intervals are canonical (maximal runs; valid_from and a finite valid_to
-- are evaluated dates), so a replayed date leaves exactly what a clean
-- day-by-day run leaves (aws_policy_store_evaluation).
CREATE TABLE IF NOT EXISTS aws_policy_variants (
    variant_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    control_logic text NOT NULL,
    params jsonb NOT NULL,
    UNIQUE (control_logic, params)
);

CREATE TABLE IF NOT EXISTS aws_policy_scopes (
    snapshot_date date NOT NULL,
    framework text NOT NULL,
    check_id text NOT NULL,
    variant_id integer NOT NULL REFERENCES aws_policy_variants,
    title text NOT NULL,
    severity text NOT NULL,
    PRIMARY KEY (snapshot_date, framework, check_id)
);
CREATE INDEX IF NOT EXISTS aws_policy_scopes_variant_idx ON aws_policy_scopes (variant_id, snapshot_date);

CREATE TABLE IF NOT EXISTS aws_policy_evaluations (
    snapshot_date date NOT NULL,
    variant_id integer NOT NULL REFERENCES aws_policy_variants,
    account_id text NOT NULL,
    control_logic text,
    run_id text,
    evaluated_at timestamptz NOT NULL,
    error_reason text,              -- data missing: the account's one verdict is 'error' 'Could not evaluate: ...'
    evaluated boolean NOT NULL,     -- BI meaning: complete data and no account-level 'error' verdict
    pass_count integer NOT NULL,
    fail_count integer NOT NULL,
    error_count integer NOT NULL,
    PRIMARY KEY (snapshot_date, variant_id, account_id)
);
-- neighbouring evaluations of one (variant, account): the writer's and the views' walks
CREATE INDEX IF NOT EXISTS aws_policy_evaluations_pair_idx
    ON aws_policy_evaluations (variant_id, account_id, snapshot_date);
-- one account's evaluations of a date (aws_policy_runs, the Compliance page's run links)
CREATE INDEX IF NOT EXISTS aws_policy_evaluations_account_idx
    ON aws_policy_evaluations (account_id, snapshot_date);
-- evaluations without control_logic (written by the upgrade from the earlier design): the per-framework
-- part of aws_policy_open_problems finds them here, and reads nothing while there are none
CREATE INDEX IF NOT EXISTS aws_policy_evaluations_no_logic_idx
    ON aws_policy_evaluations (snapshot_date, variant_id, account_id) WHERE control_logic IS NULL;
-- the dates the BI views walk: evaluated, with verdicts (aws_policy_evaluated_snapshots)
CREATE INDEX IF NOT EXISTS aws_policy_evaluations_seq_idx
    ON aws_policy_evaluations (variant_id, account_id, snapshot_date)
    WHERE evaluated AND pass_count + fail_count + error_count > 0;

CREATE TABLE IF NOT EXISTS aws_policy_verdicts (
    variant_id integer NOT NULL,
    account_id text NOT NULL,
    resource_id text NOT NULL,
    valid_from date NOT NULL,
    valid_to date NOT NULL,
    resource_type text,
    status text NOT NULL CHECK (status IN ('pass', 'fail', 'error')),
    reason text NOT NULL,
    -- on a 'fail' interval: the start of its unbroken failing streak (aws_policy_refresh_streaks)
    failing_since date,
    PRIMARY KEY (variant_id, account_id, resource_id, valid_from),
    CHECK (valid_from <= valid_to)
);
-- a database written before failing_since existed (filled in by sql/migrations/0003, through
-- aws_policy_refresh_streaks)
ALTER TABLE aws_policy_verdicts ADD COLUMN IF NOT EXISTS failing_since date;
-- what covers a date: open intervals and those ending on or after it
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_to_idx ON aws_policy_verdicts (variant_id, account_id, valid_to);
-- what started in a date range: arrivals of aws_policy_changes
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_from_idx ON aws_policy_verdicts (variant_id, account_id, valid_from);
-- the failing intervals covering a date (aws_policy_open_findings)
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_fail_idx
    ON aws_policy_verdicts (variant_id, account_id, valid_to) WHERE status = 'fail';
-- the failing intervals starting from a date (aws_policy_refresh_streaks)
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_fail_from_idx
    ON aws_policy_verdicts (variant_id, account_id, valid_from) WHERE status = 'fail';
-- failing intervals still without failing_since (just written, or written before the column existed)
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_unstreaked_idx
    ON aws_policy_verdicts (variant_id, account_id) WHERE status = 'fail' AND failing_since IS NULL;
-- retention trims by valid_to
CREATE INDEX IF NOT EXISTS aws_policy_verdicts_expiry_idx ON aws_policy_verdicts (valid_to) WHERE valid_to <> 'infinity';

-- Per (variant, account) with evaluations: its newest snapshot with verdicts
-- (latest_date, 'error' verdicts included), newest evaluated one (no account-level
-- 'error') and newest with complete data (error_reason NULL). Kept by the writers
-- (aws_policy_refresh_pairs after every change of aws_policy_evaluations), so the
-- "current" views read one row per pair instead of walking the evaluations.
CREATE TABLE IF NOT EXISTS aws_policy_pairs (
    variant_id integer NOT NULL,
    account_id text NOT NULL,
    latest_date date,
    latest_evaluated_date date,
    latest_complete_date date,
    PRIMARY KEY (variant_id, account_id)
);
CREATE INDEX IF NOT EXISTS aws_policy_pairs_account_idx ON aws_policy_pairs (account_id);
-- filled from the evaluations of a database written before it existed
DELETE FROM aws_policy_pairs;
INSERT INTO aws_policy_pairs (variant_id, account_id, latest_date, latest_evaluated_date, latest_complete_date)
SELECT variant_id, account_id,
       max(snapshot_date) FILTER (WHERE pass_count + fail_count + error_count > 0),
       max(snapshot_date) FILTER (WHERE evaluated AND pass_count + fail_count + error_count > 0),
       max(snapshot_date) FILTER (WHERE error_reason IS NULL)
FROM aws_policy_evaluations
GROUP BY variant_id, account_id;

-- ==== exceptions ==================================================================

-- Muted findings: accepted risks that dashboards should not count as open fails.
-- A fail verdict is shown as effective_status 'muted' (views in sql/views) while
-- an exception matches it and created_at (UTC date) <= the verdict's snapshot_date
-- <= expires_on: an exception never rewrites snapshots taken before it existed.
-- aws_policy_results itself is never changed.
--
-- Guarantees (enforced by the table, whoever writes it):
--   * at least one scope column (account_id, framework, check_id, resource_pattern)
--     is set, or all_scope is true: muting everything is never an accident;
--   * created_at is the database's clock at INSERT and never changes, so an
--     exception cannot be back-dated to mute history;
--   * expires_on is at most max_expiry_days (aws_policy_exception_policy, default
--     365) after the creation date; an UPDATE cannot extend past that either.
--     Change the cap with: UPDATE aws_policy_exception_policy SET max_expiry_days = 180;
--
-- Matching: every non-NULL column must match, NULL matches anything.
-- resource_pattern is a SQL LIKE pattern on resource_id: '%' any run of
-- characters, '_' exactly one character, '\' escapes ('\_' is a literal '_').
-- Example: 'arn:aws:iam::%:user/breakglass-%'. A pattern without wildcards is
-- an exact match.
CREATE TABLE IF NOT EXISTS aws_policy_exceptions (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    account_id text CHECK (account_id ~ '^[0-9]{12}$'),      -- NULL: every account
    framework text,                                           -- NULL: every framework
    check_id text,                                            -- NULL: every control
    resource_pattern text CHECK (resource_pattern <> ''),     -- LIKE on resource_id; NULL: every resource
    reason text NOT NULL CHECK (btrim(reason) <> ''),
    expires_on date NOT NULL,                                 -- last snapshot_date that is muted
    created_by text NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now(),
    all_scope boolean NOT NULL DEFAULT false                  -- true: mutes every fail (all scope NULL)
);

-- One row: the longest an exception may last, in days from its creation.
CREATE TABLE IF NOT EXISTS aws_policy_exception_policy (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    max_expiry_days integer NOT NULL DEFAULT 365 CHECK (max_expiry_days > 0)
);
INSERT INTO aws_policy_exception_policy (id) VALUES (true) ON CONFLICT (id) DO NOTHING;

-- Migration of tables created before these guarantees: rows that mute everything
-- keep doing so, now explicitly (all_scope); expiries beyond the cap are shortened
-- to it (the safe direction: fails reappear rather than stay hidden).
ALTER TABLE aws_policy_exceptions ADD COLUMN IF NOT EXISTS all_scope boolean NOT NULL DEFAULT false;
DO $$
DECLARE
    v_count integer;
    v_cap integer := (SELECT max_expiry_days FROM aws_policy_exception_policy);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'aws_policy_exceptions_scope'
                   AND conrelid = 'aws_policy_exceptions'::regclass) THEN
        UPDATE aws_policy_exceptions SET all_scope = true
        WHERE account_id IS NULL AND framework IS NULL AND check_id IS NULL AND resource_pattern IS NULL;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        IF v_count > 0 THEN
            RAISE NOTICE 'aws_policy_exceptions: % row(s) with no scope now say all_scope = true', v_count;
        END IF;
        UPDATE aws_policy_exceptions
        SET expires_on = (created_at AT TIME ZONE 'UTC')::date + v_cap
        WHERE expires_on > (created_at AT TIME ZONE 'UTC')::date + v_cap;
        GET DIAGNOSTICS v_count = ROW_COUNT;
        IF v_count > 0 THEN
            RAISE NOTICE 'aws_policy_exceptions: % row(s) expired more than % days after creation: shortened',
                         v_count, v_cap;
        END IF;
        ALTER TABLE aws_policy_exceptions ADD CONSTRAINT aws_policy_exceptions_scope CHECK (
            all_scope = (account_id IS NULL AND framework IS NULL AND check_id IS NULL
                         AND resource_pattern IS NULL));
    END IF;
END
$$;

-- ==== BI indexes ==================================================================

-- Indexes for the BI views (sql/views). The history tables carry their own
-- (above); the earlier design's indexes on the results table go with it
-- (sql/migrations/0003).
CREATE INDEX IF NOT EXISTS aws_policy_exceptions_expires_idx ON aws_policy_exceptions (expires_on);
-- aws_policy_account_freshness names each account after its newest staged row: an index
-- probe per account rather than a scan of every staged row (per account: quadratic).
CREATE INDEX IF NOT EXISTS accounts_account_date_idx ON iam_stage.accounts (account_id, snapshot_date);

-- ==== alert ledger ================================================================

-- The alert ledger: one row per (rule, finding key, channel, recipient), written by the
-- send_alerts task (src/iam_audit/alerting/alerts.py) before anything is delivered.
--   rule, alert_key        the rule (sql/alerts/<rule>.sql or the custom folder) and the
--                          finding's keys as the rule states them (they include the date
--                          the change happened, so a finding that fails again later is a
--                          new alert)
--   channel, recipient     webhook / email / slack / sns and the connection id, address
--                          or topic ARN it goes to
--   snapshot_date, run_id  the snapshot and run that found it first
--   payload, payload_digest the JSON delivered (SHA-256 of its canonical text)
--   outcome                pending (found, not delivered yet), sent, failed (last attempt
--                          failed; the next run retries it); sent_at, sent_run_id say when
--                          and by which run it was delivered
-- Exactly once: the unique key refuses a second row for the same alert whatever the run
-- (retries, reruns, two runs of a date); a row is marked sent only after its channel
-- accepted it, in the transaction that holds its row lock (no other run can send it
-- meanwhile). A process killed between delivery and that commit sends it again: the
-- payload carries the ledger key (dedup_key) for receivers that want to drop repeats.
-- Secrets never reach this table: connections stay in Airflow; last_error holds the
-- error class and the connection id, not the URL.
CREATE TABLE IF NOT EXISTS aws_policy_alert_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule text NOT NULL,
    alert_key text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('webhook', 'email', 'slack', 'sns')),
    recipient text NOT NULL,
    delivery text NOT NULL CHECK (delivery IN ('immediate', 'digest')),
    account_id text,
    severity text,
    snapshot_date date NOT NULL,
    run_id text NOT NULL,
    payload jsonb NOT NULL,
    payload_digest text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz,
    sent_run_id text,
    CHECK ((outcome = 'sent') = (sent_at IS NOT NULL)),
    UNIQUE (rule, alert_key, channel, recipient)
);
CREATE INDEX IF NOT EXISTS aws_policy_alert_ledger_unsent_idx
    ON aws_policy_alert_ledger (id) WHERE outcome <> 'sent';
CREATE INDEX IF NOT EXISTS aws_policy_alert_ledger_sent_idx
    ON aws_policy_alert_ledger (sent_at DESC) WHERE outcome = 'sent';

-- ==== Security Hub ledger =========================================================

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
