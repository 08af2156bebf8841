-- credentials_unused · catalogue: sql/catalogue/controls/credentials_unused.yaml
-- Console passwords and active access keys unused for params.max_unused_days days or
-- greater (90 in v1.2.0 and v1.3.0, 45 from v1.4.0) are disabled.
-- Audit: credential report rows other than <root_account>. A user fails when
--   (a) password_enabled and password_last_used is N days or more before as_of, or the
--       password was never used and password_last_changed (fallback user_creation_time)
--       is N days or more before as_of; or
--   (b) an active access key (slot 1 or 2) was last used N days or more before as_of, or
--       was never used and access_key_N_last_rotated (fallback user_creation_time) is N
--       days or more before as_of.
-- "N days or greater": a credential exactly N days old fails, N-1 days passes.
-- Inactive access keys (flag FALSE) are never evaluated. Users with no password and
-- no active key pass ("no active credentials").
-- DECISION: never-used credentials count from when they were issued (password last
-- changed, key last rotated), as the v3.0.0 audit says, not from the user's creation;
-- user_creation_time is only the fallback when that date is missing.
-- DECISION: unknown never passes: a credential whose enabled/active flag is NULL is
-- evaluated as if enabled, and a credential with no date to count from (no last use,
-- no issue date, no user creation time) cannot be shown to be fresh; either makes
-- the user fail with a reason saying what is unknown.
-- DECISION: reasons name dates, never a count of days, so the text stays the same from
-- one snapshot to the next until the verdict changes. A fail names each stale
-- credential's last use (or, never used, its issue date); a pass does not name the
-- last use of a credential in use: that date moves with every use (daily for most
-- keys) and would start a new history interval each day; it is in the credential
-- report (staging and the raw snapshot).
-- Reads: credential_report. Resource: the user's ARN.
{% from 'macros/check.sql' import check %}
{% call check('credentials_unused', needs=['credential_report']) %}
SELECT framework, check_id, account_id, arn, 'iam_user',
       CASE WHEN stale IS NULL AND unknown IS NULL THEN 'pass' ELSE 'fail' END,
       CASE WHEN active_count = 0
            THEN format('User %%s has no active credentials (no console password, no active access key).', user_name)
            WHEN stale IS NOT NULL
            THEN format('User %%s has credentials unused for %%s days or more before the snapshot: %%s. Remove the console password or deactivate the access key if no longer needed.',
                        user_name, max_days, concat_ws('; ', stale, unknown))
            WHEN unknown IS NOT NULL
            THEN format('User %%s has credentials whose use cannot be shown to be within the %%s days before the snapshot: %%s.',
                        user_name, max_days, unknown)
            ELSE format('Every active credential of user %%s was used or issued in the %%s days before the snapshot: %%s.',
                        user_name, max_days, fresh)
       END
FROM (
    SELECT c.framework, c.check_id, u.account_id, u.arn, u.user_name,
           (c.params->>'max_unused_days')::int AS max_days,
           count(cred.what) AS active_count,
           string_agg(cred.description, '; ' ORDER BY cred.slot)
               FILTER (WHERE cred.enabled AND cred.stale) AS stale,
           string_agg(CASE WHEN cred.enabled IS NULL
                           THEN format('whether the %%s is %%s is unknown', cred.what,
                                       CASE WHEN cred.slot = 0 THEN 'enabled' ELSE 'active' END)
                           ELSE format('%%s has no last-use, issue or user creation date', cred.what) END,
                      '; ' ORDER BY cred.slot)
               FILTER (WHERE cred.slot IS NOT NULL AND (cred.enabled IS NULL OR cred.since IS NULL)) AS unknown,
           string_agg(cred.description, '; ' ORDER BY cred.slot) AS fresh
    FROM controls c
    CROSS JOIN ready_accounts r
    JOIN iam_stage.credential_report u
      ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND NOT u.is_root
    LEFT JOIN LATERAL (
        SELECT v.slot, v.what, v.since, v.enabled, stale.stale,
               CASE WHEN v.last_used IS NOT NULL AND stale.stale
                    THEN format('%%s last used on %%s', v.what, to_char(v.last_used AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
                    WHEN v.last_used IS NOT NULL
                    THEN format('%%s used', v.what)
                    ELSE format('%%s never used, %%s on %%s', v.what,
                                CASE WHEN v.issued IS NOT NULL THEN v.issued_word ELSE 'user created' END,
                                to_char(v.since AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
               END AS description
        FROM (VALUES
            (0, 'console password', u.password_enabled, u.password_last_used, u.password_last_changed,
             coalesce(u.password_last_used, u.password_last_changed, u.user_creation_time), 'set'),
            (1, 'access key 1', u.access_key_1_active, u.access_key_1_last_used_date, u.access_key_1_last_rotated,
             coalesce(u.access_key_1_last_used_date, u.access_key_1_last_rotated, u.user_creation_time), 'created'),
            (2, 'access key 2', u.access_key_2_active, u.access_key_2_last_used_date, u.access_key_2_last_rotated,
             coalesce(u.access_key_2_last_used_date, u.access_key_2_last_rotated, u.user_creation_time), 'created')
        ) AS v(slot, what, enabled, last_used, issued, since, issued_word)
        CROSS JOIN LATERAL (
            SELECT r.as_of - v.since >= make_interval(days => (c.params->>'max_unused_days')::int) AS stale
        ) AS stale
        WHERE v.enabled IS NOT FALSE
    ) AS cred ON true
    GROUP BY c.framework, c.check_id, c.params, u.account_id, u.arn, u.user_name
) AS per_user
{% endcall %}
