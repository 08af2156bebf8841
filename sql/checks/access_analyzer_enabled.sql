-- access_analyzer_enabled · cis_v1.3.0 1.21 · cis_v1.4.0 1.20 · cis_v1.5.0 1.20 · cis_v2.0.0 1.20 · cis_v3.0.0 1.20 · cis_v4.0.0 1.20 · cis_v5.0.0 1.19 · cis_v6.0.0 2.19 · severity medium
-- IAM Access Analyzer has an active analyzer in every enabled region.
-- Audit: for every region of DescribeRegions that is enabled (OptInStatus
-- 'opt-in-not-required' or 'opted-in', or NULL), accessanalyzer ListAnalyzers must
-- return an analyzer with status ACTIVE. Analyzers of any type count (ACCOUNT or
-- ORGANIZATION zone of trust, unused-access analyzers too).
-- DECISION: an account with no enabled region recorded fails (coverage cannot be
-- shown) instead of passing vacuously. Analyzers in regions that are not enabled are
-- ignored.
-- DECISION: ListAnalyzers is read per region; a region that refused it (a region-deny
-- SCP answers AccessDeniedException; iam_stage.access_analyzer_regions.status 'error')
-- is unknown. A readable region without an active analyzer fails the account whatever
-- the unreadable ones hold; otherwise any unreadable enabled region makes the verdict
-- 'error', naming the regions and why.
-- Reads: regions, access_analyzers (with access_analyzer_regions). Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('access_analyzer_enabled', needs=['regions', 'access_analyzers']) %}
SELECT c.framework, c.check_id, r.account_id, r.account_id, 'account',
       CASE WHEN coalesce(g.enabled, 0) = 0 OR g.missing > 0 THEN 'fail'
            WHEN g.unreadable > 0 THEN 'error'
            ELSE 'pass' END,
       CASE WHEN coalesce(g.enabled, 0) = 0
            THEN 'No enabled region was recorded for the account, so Access Analyzer coverage cannot be shown; check DescribeRegions and create an analyzer in every enabled region.'
            WHEN g.missing > 0
            THEN format('IAM Access Analyzer has no active analyzer in %%s of %%s enabled regions: %%s%%s. Create an analyzer in each of them.%%s',
                        g.missing, g.enabled,
                        array_to_string(g.missing_regions[1:10], ', '),
                        CASE WHEN g.missing > 10 THEN format(' and %%s more', g.missing - 10) ELSE '' END,
                        CASE WHEN g.unreadable > 0
                             THEN format(' ListAnalyzers could not be read in %%s more: %%s.', g.unreadable,
                                         array_to_string(g.unreadable_regions[1:10], '; '))
                             ELSE '' END)
            WHEN g.unreadable > 0
            THEN format('Could not evaluate: ListAnalyzers could not be read in %%s of %%s enabled regions: %%s%%s; the other %%s have an active analyzer. Allow access-analyzer:ListAnalyzers there (exempt the audit role from the region-deny SCP) or create an analyzer and re-run.',
                        g.unreadable, g.enabled,
                        array_to_string(g.unreadable_regions[1:10], '; '),
                        CASE WHEN g.unreadable > 10 THEN format(' and %%s more', g.unreadable - 10) ELSE '' END,
                        g.enabled - g.unreadable)
            ELSE format('IAM Access Analyzer has an active analyzer in all %%s enabled regions.', g.enabled)
       END
FROM controls c
CROSS JOIN ready_accounts r
LEFT JOIN (
    SELECT reg.account_id,
           count(*) AS enabled,
           count(*) FILTER (WHERE reg.readable AND NOT reg.has_active) AS missing,
           count(*) FILTER (WHERE NOT reg.readable AND NOT reg.has_active) AS unreadable,
           array_agg(reg.region_name ORDER BY reg.region_name)
               FILTER (WHERE reg.readable AND NOT reg.has_active) AS missing_regions,
           array_agg(format('%%s (%%s)', reg.region_name, reg.why) ORDER BY reg.region_name)
               FILTER (WHERE NOT reg.readable AND NOT reg.has_active) AS unreadable_regions
    FROM (
        SELECT g.account_id, g.region_name,
               e.region_name IS NULL AS readable,
               coalesce(e.error_code || ': ' || e.error_message, e.error_code, 'not read') AS why,
               EXISTS (SELECT 1 FROM iam_stage.access_analyzers a
                       WHERE a.snapshot_date = g.snapshot_date AND a.account_id = g.account_id
                         AND a.region_name = g.region_name AND upper(a.status) = 'ACTIVE') AS has_active
        FROM iam_stage.regions g
        LEFT JOIN iam_stage.access_analyzer_regions e
               ON e.snapshot_date = g.snapshot_date AND e.account_id = g.account_id
              AND e.region_name = g.region_name AND e.status = 'error'
        WHERE g.snapshot_date = %(snapshot_date)s
          AND (g.opt_in_status IS NULL OR g.opt_in_status IN ('opt-in-not-required', 'opted-in'))
    ) AS reg
    GROUP BY reg.account_id
) AS g ON g.account_id = r.account_id
{% endcall %}
