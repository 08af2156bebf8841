-- Synthetic staging snapshot for the check benchmark: {accounts} accounts x {users} users,
-- set-based (generate_series), straight into iam_stage.*. Proportions per account of U users:
--   credential report U + root; users U; 10 groups; U memberships; U/5 + 3 roles;
--   20 customer + 10 AWS-managed policies; attachments: 10 groups, every role, U/10 users;
--   inline policies: U/20 users and U/10 roles; access keys: key 1 for half the users,
--   key 2 for a tenth; virtual MFA for a third of the users; 17 regions; analyzers in 2;
--   1 server certificate, 1 SAML provider, password policy, account summary, SECURITY contact.
-- Timestamps are spread so that every check yields passes and fails.
-- Placeholders {accounts}, {users}, {date} are filled by stage_checks.py.

CREATE TEMP TABLE bench_acct ON COMMIT DROP AS
SELECT a, lpad((100000000000 + a)::text, 12, '0') AS account_id
FROM generate_series(1, {accounts}) AS a;

INSERT INTO iam_stage.organization_accounts (snapshot_date, account_id, account_name, status)
SELECT '{date}', account_id, 'acct-' || a, 'ACTIVE' FROM bench_acct;

INSERT INTO iam_stage.accounts (snapshot_date, account_id, account_name, extracted_at, run_id, raw_prefix)
SELECT '{date}', account_id, 'acct-' || a, now(), 'bench', 's3://bench/' || account_id FROM bench_acct;

INSERT INTO iam_stage.extraction_status (snapshot_date, account_id, dataset, status, row_count)
SELECT '{date}', account_id, d, 'ok', 0
FROM bench_acct CROSS JOIN unnest(ARRAY['credential_report', 'authorization_details', 'password_policy',
    'account_summary', 'virtual_mfa_devices', 'access_keys', 'server_certificates', 'regions',
    'access_analyzers', 'alternate_contacts', 'identity_providers']) AS d;

-- root rows
INSERT INTO iam_stage.credential_report (snapshot_date, account_id, user_name, arn, is_root, generated_time,
    user_creation_time, password_enabled, password_last_used, mfa_active, access_key_1_active,
    access_key_1_last_rotated, access_key_1_last_used_date, access_key_2_active, cert_1_active, cert_2_active)
SELECT '{date}', account_id, '<root_account>', 'arn:aws:iam::' || account_id || ':root', true, now(),
       now() - interval '1500 days', NULL, now() - (a % 120) * interval '1 day', a % 3 <> 0, a % 5 = 0,
       CASE WHEN a % 5 = 0 THEN now() - interval '400 days' END,
       CASE WHEN a % 5 = 0 THEN now() - interval '3 days' END, false, false, false
FROM bench_acct;

-- users
INSERT INTO iam_stage.credential_report (snapshot_date, account_id, user_name, arn, is_root, generated_time,
    user_creation_time, password_enabled, password_last_used, password_last_changed, mfa_active,
    access_key_1_active, access_key_1_last_rotated, access_key_1_last_used_date, access_key_1_last_used_region,
    access_key_1_last_used_service, access_key_2_active, access_key_2_last_rotated, access_key_2_last_used_date,
    cert_1_active, cert_2_active)
SELECT '{date}', account_id, 'user-' || u, 'arn:aws:iam::' || account_id || ':user/user-' || u, false, now(),
       now() - ((u % 700) + 30) * interval '1 day',
       u % 10 < 7,
       CASE WHEN u % 10 < 7 AND u % 4 <> 0 THEN now() - (u % 150) * interval '1 day' END,
       CASE WHEN u % 10 < 7 THEN now() - (u % 300) * interval '1 day' END,
       u % 10 < 6,
       u % 2 = 0, CASE WHEN u % 2 = 0 THEN now() - (u % 200) * interval '1 day' END,
       CASE WHEN u % 2 = 0 AND u % 6 <> 0 THEN now() - (u % 100) * interval '1 day' END,
       CASE WHEN u % 2 = 0 THEN 'us-east-1' END, CASE WHEN u % 2 = 0 THEN 's3' END,
       u % 10 = 0, CASE WHEN u % 10 = 0 THEN now() - (u % 50) * interval '1 day' END,
       CASE WHEN u % 10 = 0 THEN now() - interval '2 days' END,
       false, false
FROM bench_acct CROSS JOIN generate_series(1, {users}) AS u;

INSERT INTO iam_stage.users (snapshot_date, account_id, arn, user_name, user_id, path, create_date, tags)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':user/user-' || u, 'user-' || u,
       'AIDA' || account_id || u, '/', now() - ((u % 700) + 30) * interval '1 day', '[]'::jsonb
FROM bench_acct CROSS JOIN generate_series(1, {users}) AS u;

INSERT INTO iam_stage.groups (snapshot_date, account_id, arn, group_name, group_id, path, create_date)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':group/group-' || g, 'group-' || g,
       'AGPA' || account_id || g, '/', now() - interval '900 days'
FROM bench_acct CROSS JOIN generate_series(0, 9) AS g;

INSERT INTO iam_stage.group_memberships (snapshot_date, account_id, user_arn, group_name)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':user/user-' || u, 'group-' || (u % 10)
FROM bench_acct CROSS JOIN generate_series(1, {users}) AS u;

INSERT INTO iam_stage.roles (snapshot_date, account_id, arn, role_name, role_id, path, create_date,
    assume_role_policy, role_last_used_date, role_last_used_region, tags)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':role/' || name, name, 'AROA' || account_id || r,
       '/', now() - (r % 800) * interval '1 day',
       CASE WHEN r = 0 THEN jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(
                jsonb_build_object('Effect', 'Allow', 'Principal', jsonb_build_object('AWS',
                    'arn:aws:iam::100000000001:root'), 'Action', 'sts:AssumeRole')))
            WHEN r % 7 = 3 THEN jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(
                jsonb_build_object('Effect', 'Allow', 'Principal', jsonb_build_object('AWS',
                    'arn:aws:iam::999988887777:root'), 'Action', 'sts:AssumeRole')))
            ELSE jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(
                jsonb_build_object('Effect', 'Allow', 'Principal', jsonb_build_object('Service',
                    'ec2.amazonaws.com'), 'Action', 'sts:AssumeRole'))) END,
       CASE WHEN r % 3 <> 0 THEN now() - (r % 200) * interval '1 day' END, 'us-east-1', '[]'::jsonb
FROM bench_acct CROSS JOIN generate_series(0, {users} / 5 + 2) AS r
CROSS JOIN LATERAL (SELECT CASE r WHEN 0 THEN 'OrganizationAccountAccessRole' WHEN 1 THEN 'AWSSupportRole'
                                  ELSE 'role-' || r END AS name) n;

INSERT INTO iam_stage.managed_policies (snapshot_date, account_id, arn, policy_name, policy_id, path,
    is_aws_managed, attachment_count, permissions_boundary_usage_count, is_attachable, default_version_id,
    create_date, update_date, document)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':policy/policy-' || p, 'policy-' || p,
       'ANPA' || account_id || p, '/', false, CASE WHEN p < 10 THEN 1 ELSE 0 END, 0, true, 'v1',
       now() - interval '500 days', now() - interval '100 days',
       jsonb_build_object('Version', '2012-10-17', 'Statement', CASE
           WHEN p = 0 THEN jsonb_build_array(jsonb_build_object('Effect', 'Allow', 'Action', '*', 'Resource', '*'))
           WHEN p = 1 THEN jsonb_build_array(jsonb_build_object('Effect', 'Allow', 'Action', 'iam:*', 'Resource', '*'))
           ELSE jsonb_build_array(jsonb_build_object('Effect', 'Allow', 'Action',
                    jsonb_build_array('s3:GetObject', 's3:PutObject', 'sqs:SendMessage'), 'Resource', '*')) END)
FROM bench_acct CROSS JOIN generate_series(0, 19) AS p;

INSERT INTO iam_stage.managed_policies (snapshot_date, account_id, arn, policy_name, policy_id, path,
    is_aws_managed, attachment_count, permissions_boundary_usage_count, is_attachable, default_version_id,
    create_date, update_date, document)
SELECT '{date}', account_id, 'arn:aws:iam::aws:policy/' || name, name, 'ANPAAWS' || i, '/', true, 1, 0, true,
       'v1', now() - interval '2000 days', now() - interval '300 days',
       jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(jsonb_build_object(
           'Effect', 'Allow', 'Action', CASE WHEN name = 'AdministratorAccess' THEN '*' ELSE 'support:*' END,
           'Resource', '*')))
FROM bench_acct CROSS JOIN unnest(ARRAY['AdministratorAccess', 'AWSSupportAccess', 'ReadOnlyAccess',
    'AWSCloudShellFullAccess', 'AmazonS3ReadOnlyAccess', 'AmazonEC2ReadOnlyAccess', 'IAMReadOnlyAccess',
    'AWSCodeDeployFullAccess', 'CloudWatchReadOnlyAccess', 'AmazonSQSFullAccess']) WITH ORDINALITY AS x(name, i);

INSERT INTO iam_stage.policy_attachments (snapshot_date, account_id, entity_type, entity_arn, entity_name,
    policy_arn, policy_name)
SELECT '{date}', account_id, 'group', 'arn:aws:iam::' || account_id || ':group/group-' || g, 'group-' || g,
       CASE g WHEN 0 THEN 'arn:aws:iam::' || account_id || ':policy/policy-0'
              WHEN 1 THEN 'arn:aws:iam::aws:policy/AWSSupportAccess'
              ELSE 'arn:aws:iam::aws:policy/ReadOnlyAccess' END,
       CASE g WHEN 0 THEN 'policy-0' WHEN 1 THEN 'AWSSupportAccess' ELSE 'ReadOnlyAccess' END
FROM bench_acct CROSS JOIN generate_series(0, 9) AS g;

INSERT INTO iam_stage.policy_attachments (snapshot_date, account_id, entity_type, entity_arn, entity_name,
    policy_arn, policy_name)
SELECT '{date}', account_id, 'role', 'arn:aws:iam::' || account_id || ':role/' || name, name,
       CASE WHEN r = 0 THEN 'arn:aws:iam::aws:policy/AdministratorAccess'
            WHEN r = 1 THEN 'arn:aws:iam::aws:policy/AWSSupportAccess'
            ELSE 'arn:aws:iam::' || account_id || ':policy/policy-' || (r % 20) END,
       CASE WHEN r = 0 THEN 'AdministratorAccess' WHEN r = 1 THEN 'AWSSupportAccess'
            ELSE 'policy-' || (r % 20) END
FROM bench_acct CROSS JOIN generate_series(0, {users} / 5 + 2) AS r
CROSS JOIN LATERAL (SELECT CASE r WHEN 0 THEN 'OrganizationAccountAccessRole' WHEN 1 THEN 'AWSSupportRole'
                                  ELSE 'role-' || r END AS name) n;

INSERT INTO iam_stage.policy_attachments (snapshot_date, account_id, entity_type, entity_arn, entity_name,
    policy_arn, policy_name)
SELECT '{date}', account_id, 'user', 'arn:aws:iam::' || account_id || ':user/user-' || u, 'user-' || u,
       CASE WHEN u % 20 = 0 THEN 'arn:aws:iam::aws:policy/AWSCloudShellFullAccess'
            ELSE 'arn:aws:iam::' || account_id || ':policy/policy-' || (u % 20) END,
       CASE WHEN u % 20 = 0 THEN 'AWSCloudShellFullAccess' ELSE 'policy-' || (u % 20) END
FROM bench_acct CROSS JOIN generate_series(10, {users}, 10) AS u;

INSERT INTO iam_stage.inline_policies (snapshot_date, account_id, entity_type, entity_arn, entity_name,
    policy_name, document)
SELECT '{date}', account_id, 'user', 'arn:aws:iam::' || account_id || ':user/user-' || u, 'user-' || u,
       'inline-' || u,
       jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(jsonb_build_object(
           'Effect', 'Allow', 'Action', CASE WHEN u % 100 = 0 THEN '*' ELSE 's3:GetObject' END, 'Resource', '*')))
FROM bench_acct CROSS JOIN generate_series(20, {users}, 20) AS u;

INSERT INTO iam_stage.inline_policies (snapshot_date, account_id, entity_type, entity_arn, entity_name,
    policy_name, document)
SELECT '{date}', account_id, 'role', 'arn:aws:iam::' || account_id || ':role/role-' || r, 'role-' || r,
       'inline-' || r,
       jsonb_build_object('Version', '2012-10-17', 'Statement', jsonb_build_array(jsonb_build_object(
           'Effect', 'Allow', 'Action', jsonb_build_array('sqs:SendMessage', 'sqs:ReceiveMessage'),
           'Resource', '*')))
FROM bench_acct CROSS JOIN generate_series(2, {users} / 5 + 2, 2) AS r;

INSERT INTO iam_stage.password_policy (snapshot_date, account_id, has_policy, minimum_password_length,
    require_symbols, require_numbers, require_uppercase_characters, require_lowercase_characters,
    allow_users_to_change_password, expire_passwords, max_password_age, password_reuse_prevention, hard_expiry)
SELECT '{date}', account_id, a % 3 <> 1, CASE WHEN a % 3 = 0 THEN 14 WHEN a % 3 = 2 THEN 8 END,
       a % 3 = 0, a % 3 <> 1, a % 3 = 0, a % 3 <> 1, a % 3 <> 1, a % 3 <> 1,
       CASE WHEN a % 3 = 0 THEN 90 WHEN a % 3 = 2 THEN 180 END,
       CASE WHEN a % 3 = 0 THEN 24 WHEN a % 3 = 2 THEN 5 END, false
FROM bench_acct;

INSERT INTO iam_stage.account_summary (snapshot_date, account_id, account_mfa_enabled,
    account_access_keys_present, summary)
SELECT '{date}', account_id, (a % 3 <> 0)::int, (a % 5 = 0)::int,
       jsonb_build_object('Users', {users}, 'AccountMFAEnabled', (a % 3 <> 0)::int,
                          'AccountAccessKeysPresent', (a % 5 = 0)::int)
FROM bench_acct;

INSERT INTO iam_stage.virtual_mfa_devices (snapshot_date, account_id, serial_number, user_arn, user_name,
    enable_date)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':mfa/user-' || u,
       'arn:aws:iam::' || account_id || ':user/user-' || u, 'user-' || u, now() - interval '100 days'
FROM bench_acct CROSS JOIN generate_series(3, {users}, 3) AS u;

INSERT INTO iam_stage.virtual_mfa_devices (snapshot_date, account_id, serial_number, user_arn, user_name,
    enable_date)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':mfa/root-account-mfa-device',
       'arn:aws:iam::' || account_id || ':root', '<root_account>', now() - interval '700 days'
FROM bench_acct WHERE a % 3 = 1;

INSERT INTO iam_stage.access_keys (snapshot_date, account_id, user_name, user_arn, access_key_id, status,
    create_date, last_used_date, last_used_region, last_used_service)
SELECT '{date}', account_id, 'user-' || u, 'arn:aws:iam::' || account_id || ':user/user-' || u,
       'AKIA' || account_id || lpad(u::text, 7, '0') || 'A', 'Active', now() - (u % 200) * interval '1 day',
       CASE WHEN u % 6 <> 0 THEN now() - (u % 100) * interval '1 day' END, 'us-east-1', 's3'
FROM bench_acct CROSS JOIN generate_series(2, {users}, 2) AS u;

INSERT INTO iam_stage.access_keys (snapshot_date, account_id, user_name, user_arn, access_key_id, status,
    create_date, last_used_date, last_used_region, last_used_service)
SELECT '{date}', account_id, 'user-' || u, 'arn:aws:iam::' || account_id || ':user/user-' || u,
       'AKIA' || account_id || lpad(u::text, 7, '0') || 'B', 'Active', now() - (u % 50) * interval '1 day',
       now() - interval '2 days', 'us-east-1', 'ec2'
FROM bench_acct CROSS JOIN generate_series(10, {users}, 10) AS u;

INSERT INTO iam_stage.server_certificates (snapshot_date, account_id, arn, certificate_name, certificate_id,
    path, upload_date, expiration)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':server-certificate/cert', 'cert',
       'ASCA' || account_id, '/', now() - interval '400 days',
       now() + CASE WHEN a % 2 = 0 THEN interval '-30 days' ELSE interval '300 days' END
FROM bench_acct;

INSERT INTO iam_stage.regions (snapshot_date, account_id, region_name, opt_in_status)
SELECT '{date}', account_id, region, 'opt-in-not-required'
FROM bench_acct CROSS JOIN unnest(ARRAY['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1',
    'eu-west-2', 'eu-west-3', 'eu-central-1', 'eu-north-1', 'ap-south-1', 'ap-northeast-1', 'ap-northeast-2',
    'ap-northeast-3', 'ap-southeast-1', 'ap-southeast-2', 'ca-central-1', 'sa-east-1']) AS region;

INSERT INTO iam_stage.access_analyzers (snapshot_date, account_id, region_name, analyzer_arn, analyzer_name,
    analyzer_type, status)
SELECT '{date}', account_id, region, 'arn:aws:access-analyzer:' || region || ':' || account_id
       || ':analyzer/a', 'a', 'ACCOUNT', 'ACTIVE'
FROM bench_acct CROSS JOIN unnest(ARRAY['us-east-1', 'eu-west-1']) AS region;

INSERT INTO iam_stage.alternate_contacts (snapshot_date, account_id, contact_type, is_set, contact_name,
    email_address, title)
SELECT '{date}', account_id, 'SECURITY', a % 2 = 0, CASE WHEN a % 2 = 0 THEN 'Security' END,
       CASE WHEN a % 2 = 0 THEN 'sec@example.com' END, CASE WHEN a % 2 = 0 THEN 'Security' END
FROM bench_acct;

INSERT INTO iam_stage.identity_providers (snapshot_date, account_id, arn, provider_type, create_date, valid_until)
SELECT '{date}', account_id, 'arn:aws:iam::' || account_id || ':saml-provider/corp', 'saml',
       now() - interval '300 days', now() + interval '300 days'
FROM bench_acct;
