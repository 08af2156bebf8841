-- hygiene_root_credentials_centralized · catalogue: sql/catalogue/controls/hygiene_root_credentials_centralized.yaml
-- The organisation manages its member accounts' root credentials centrally.
-- Rule: iam:ListOrganizationsFeatures, called once per run with the discovery credentials
-- (management account or delegated administrator), must list RootCredentialsManagement
-- among EnabledFeatures; then pass, else fail. This is the mechanical part of CIS v7.0.0
-- 2.1.1 (Manual there: its console audit also confirms the management account and IAM's
-- trusted access, which the call's success implies). RootSessions (privileged root actions
-- in member accounts) is named in the reason but not required: the benchmark calls it
-- optional.
-- One verdict per audited account, since every account's root depends on it; the
-- management account's own root user is never covered by the feature, which its reason says.
-- DECISION: the organisation data set is collected once per run; when it is missing,
-- refused (a member account's credentials answer
-- AccountNotManagementOrDelegatedAdministratorException; not in an organisation:
-- OrganizationNotFoundException) or malformed, every account gets 'error' (readiness),
-- never a pass.
-- Reads: organization_features, organization_info (management account, when collected).
-- Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('hygiene_root_credentials_centralized', needs=['organization_features']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN f.root_credentials THEN 'pass' ELSE 'fail' END,
       CASE WHEN f.root_credentials
            THEN format('Organisation %%s manages member accounts'' root credentials centrally (RootCredentialsManagement enabled; privileged root actions %%s)%%s.',
                        coalesce(f.organization_id, '(id not returned)'),
                        CASE WHEN f.root_sessions THEN 'enabled' ELSE 'not enabled' END,
                        CASE WHEN r.account_id = i.management_account_id
                             THEN '; this is the management account, whose own root user the feature does not cover: keep its MFA'
                             ELSE '' END)
            ELSE format('Organisation %%s does not manage root credentials centrally (iam:ListOrganizationsFeatures lists %%s), so every member account can keep or recover a root password; from the management account enable Root access management in IAM (root credentials management) and delete member accounts'' root credentials.',
                        coalesce(f.organization_id, '(id not returned)'),
                        coalesce(f.features, 'no enabled feature'))
       END
FROM controls c
CROSS JOIN ready_accounts r
CROSS JOIN (
    SELECT max(organization_id) AS organization_id,
           coalesce(bool_or(feature = 'RootCredentialsManagement'), false) AS root_credentials,
           coalesce(bool_or(feature = 'RootSessions'), false) AS root_sessions,
           string_agg(feature, ', ' ORDER BY feature) AS features
    FROM iam_stage.organization_features
    WHERE snapshot_date = %(snapshot_date)s
) f
LEFT JOIN iam_stage.organization_info i ON i.snapshot_date = %(snapshot_date)s
{% endcall %}
