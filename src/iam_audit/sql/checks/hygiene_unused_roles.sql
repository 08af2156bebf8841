-- hygiene_unused_roles · catalogue: sql/catalogue/controls/hygiene_unused_roles.yaml
-- Every role was used in the 90 days before the snapshot, or is younger than 90 days.
-- Audit: per role, the reference date is RoleLastUsed.LastUsedDate, or the role's
-- create_date when it was never used; fail when as_of - reference > 90 days (a role
-- last used exactly 90 days ago passes; a never-used role created less than 90 days
-- ago passes).
-- DECISION: service-linked roles (path starting with /aws-service-role/) are excluded
-- (no verdict): AWS services create and use them, and they cannot be deleted while the
-- service needs them.
-- DECISION: a role with neither a last-use nor a creation date fails (its use cannot
-- be shown), with a reason saying so. IAM tracks RoleLastUsed for about 400 days and
-- with some delay; the 90-day window is well inside both.
-- DECISION: reasons name dates, never a count of days, so the text stays the same from
-- one snapshot to the next until the verdict changes. A role in use passes without its
-- last-use date: that date moves with every use (daily for most roles) and would start
-- a new history interval each day; the date is in iam_stage.roles and the raw snapshot.
-- Reads: authorization_details (roles). Resource: the role's ARN.
{% from 'macros/check.sql' import check %}
{% call check('hygiene_unused_roles', needs=['authorization_details']) %}
SELECT c.framework, c.check_id, ro.account_id, ro.arn, 'iam_role',
       CASE WHEN r.as_of - coalesce(ro.role_last_used_date, ro.create_date) <= interval '90 days'
            THEN 'pass' ELSE 'fail' END,
       CASE WHEN coalesce(ro.role_last_used_date, ro.create_date) IS NULL
            THEN format('Role %%s has neither a last-use nor a creation date, so its use in the last 90 days cannot be shown.',
                        ro.role_name)
            WHEN ro.role_last_used_date IS NOT NULL
                 AND r.as_of - ro.role_last_used_date <= interval '90 days'
            THEN format('Role %%s was used in the 90 days before the snapshot (RoleLastUsed).', ro.role_name)
            WHEN ro.role_last_used_date IS NOT NULL
            THEN format('Role %%s was last used on %%s, more than 90 days before the snapshot; delete it if it is no longer needed.',
                        ro.role_name, to_char(ro.role_last_used_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
            WHEN r.as_of - ro.create_date <= interval '90 days'
            THEN format('Role %%s has never been used but was created on %%s, at most 90 days before the snapshot; it fails if still unused after %%s.',
                        ro.role_name, to_char(ro.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'),
                        to_char((ro.create_date + interval '90 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
            ELSE format('Role %%s has never been used since its creation on %%s, more than 90 days before the snapshot; delete it if it is not needed.',
                        ro.role_name, to_char(ro.create_date AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
       END
FROM controls c
CROSS JOIN ready_accounts r
JOIN iam_stage.roles ro
  ON ro.snapshot_date = %(snapshot_date)s AND ro.account_id = r.account_id
WHERE NOT starts_with(coalesce(ro.path, '/'), '/aws-service-role/')
{% endcall %}
