-- access_keys_initial_setup · catalogue: sql/catalogue/controls/access_keys_initial_setup.yaml
-- No access key is set up during initial setup for IAM users with a console password.
-- Audit (the credential-report audit of v1.4.0, v1.5.0 and v3.0.0): credential report
-- rows other than <root_account> with password_enabled = true; a user fails when an
-- access key slot is active and its access_key_N_last_used_date is N/A (never used):
-- a key handed out with the console user and never needed.
-- Users without a console password (password_enabled = false) are not evaluated.
-- DECISION: only active keys count, as Prowler reads the same audit: an inactive key
-- authenticates nothing, and credentials_unused / the key lifecycle checks cover it.
-- DECISION: every version that lists the control is evaluated with this one audit,
-- whatever assessment status (manual in all but v1.5.0) the version gives it; the
-- catalogue keeps each version's status.
-- DECISION: unknown never passes: a user whose password_enabled is unknown (NULL) is
-- evaluated as a console user, and a slot whose active flag is unknown fails with a
-- reason saying so.
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('access_keys_initial_setup', needs=['credential_report']) %}
SELECT c.framework, c.check_id, u.account_id, u.arn, 'iam_user',
       CASE WHEN u.password_enabled IS TRUE AND k.unused IS NULL AND k.unknown IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN u.password_enabled IS NULL
            THEN format('The credential report does not say whether user %%s has a console password, so an access key set up with it cannot be ruled out.', u.user_name)
            WHEN k.unused IS NOT NULL
            THEN format('User %%s has a console password and an active access key that was never used (%%s): it was likely created at initial setup; delete it if the user does not need programmatic access.',
                        u.user_name, k.unused)
            WHEN k.unknown IS NOT NULL
            THEN format('User %%s has a console password, and whether %%s is active is unknown, so an unused access key cannot be ruled out.',
                        u.user_name, k.unknown)
            ELSE format('User %%s has a console password and no active access key that was never used.', u.user_name)
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.credential_report u
  ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
CROSS JOIN LATERAL (
    SELECT string_agg(format('access key %%s, created %%s', v.slot,
                             coalesce(to_char(v.rotated AT TIME ZONE 'UTC', 'YYYY-MM-DD'), 'on an unknown date')),
                      '; ' ORDER BY v.slot) FILTER (WHERE v.active AND v.last_used IS NULL) AS unused,
           string_agg(format('access key %%s', v.slot), ' and ' ORDER BY v.slot) FILTER (WHERE v.active IS NULL) AS unknown
    FROM (VALUES
        (1, u.access_key_1_active, u.access_key_1_last_used_date, u.access_key_1_last_rotated),
        (2, u.access_key_2_active, u.access_key_2_last_used_date, u.access_key_2_last_rotated)
    ) AS v(slot, active, last_used, rotated)
) AS k
WHERE u.password_enabled IS NOT FALSE
{% endcall %}
