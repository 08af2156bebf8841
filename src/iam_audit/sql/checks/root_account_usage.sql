-- root_account_usage · catalogue: sql/catalogue/controls/root_account_usage.yaml
-- The root user is not used for everyday work.
-- Audit: the <root_account> row of the credential report; password_last_used,
-- access_key_1_last_used_date and access_key_2_last_used_date must all be older than
-- params.max_days_since_use days before as_of (or never used: NULL).
-- DECISION: N (params.max_days_since_use, 90) is this tool's choice: no version's
-- audit names a number of days (it shows the last-use dates for a person to judge);
-- Steampipe uses 90, Prowler 1. It stays a catalogue param, set per version.
-- DECISION: "within N days" is inclusive: a use exactly N days before as_of fails,
-- N+1 days passes. Access-key use counts whether or not the key is still active
-- (root_access_keys reports the keys themselves).
-- DECISION: a ready account whose credential report has no <root_account> row gets
-- an 'error' verdict from the body (the only check allowed to do so): the data set
-- was collected but is incomplete, and neither 'pass' nor 'fail' would be true.
-- Reasons name the last-use times and N, never a count of days, so the text stays the
-- same from one snapshot to the next until root is used again or a use leaves the window.
-- Reads: credential_report. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('root_account_usage', needs=['credential_report']) %}
SELECT framework, check_id, account_id, account_id, 'account',
       CASE WHEN NOT has_root THEN 'error'
            WHEN recent_uses IS NULL THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN NOT has_root
            THEN 'The credential report has no <root_account> row, so root usage cannot be evaluated; regenerate the credential report.'
            WHEN recent_uses IS NULL
            THEN format('The root user was not used in the %%s days before the snapshot (%%s).',
                        max_days, coalesce('last use: ' || last_use_text, 'never used'))
            ELSE format('The root user was used in the %%s days before the snapshot: %%s. Use IAM roles or Identity Center users for daily work and keep root for the tasks that need it.',
                        max_days, recent_uses)
       END
FROM (
    SELECT c.framework, c.check_id, r.account_id,
           (c.params->>'max_days_since_use')::int AS max_days,
           u.arn IS NOT NULL AS has_root,
           string_agg(format('%%s %%s', use.what,
                             to_char(use.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')),
                      '; ' ORDER BY use.ts DESC)
               FILTER (WHERE r.as_of - use.ts <= make_interval(days => (c.params->>'max_days_since_use')::int))
               AS recent_uses,
           (array_agg(format('%%s %%s', use.what,
                             to_char(use.ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'))
                      ORDER BY use.ts DESC) FILTER (WHERE use.ts IS NOT NULL))[1] AS last_use_text
    FROM controls c
    CROSS JOIN ready_accounts r
    LEFT JOIN iam_stage.credential_report u
      ON u.snapshot_date = %(snapshot_date)s AND u.account_id = r.account_id AND u.is_root
    LEFT JOIN LATERAL (VALUES
        ('console password last used', u.password_last_used),
        ('access key 1 last used', u.access_key_1_last_used_date),
        ('access key 2 last used', u.access_key_2_last_used_date)
    ) AS use(what, ts) ON use.ts IS NOT NULL
    GROUP BY c.framework, c.check_id, r.account_id, c.params, u.arn
) AS root_use
{% endcall %}
