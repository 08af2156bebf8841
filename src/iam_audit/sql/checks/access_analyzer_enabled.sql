-- access_analyzer_enabled · catalogue: sql/catalogue/controls/access_analyzer_enabled.yaml
-- IAM Access Analyzer has an active external access analyzer (in every enabled
-- region from v1.4.0 on).
-- Audit: the enabled regions are those of DescribeRegions with OptInStatus
-- 'opt-in-not-required' or 'opted-in' (or NULL); an analyzer counts when ListAnalyzers
-- shows it with status ACTIVE and a type in params.analyzer_types.
--   params.scope = any_region (v1.3.0 1.21, "Ensure that IAM Access analyzer is
--     enabled"): one counting analyzer in any enabled region passes;
--   params.scope = all_regions (v1.4.0 on, "... for all regions"): every enabled
--     region needs one.
-- DECISION: params.analyzer_types is [ACCOUNT, ORGANIZATION] (external access) in
-- every version. v5.0.0 and v6.0.0 ask for an *external access* analyzer in words;
-- the earlier versions predate the unused-access (2023) and internal-access (2025)
-- types, and their rationale is finding resources shared with an external entity,
-- which only external access analyzers report. An unused- or internal-access
-- analyzer therefore never counts; the reason names it when it is all a region has.
-- DECISION: an account with no enabled region recorded fails (coverage cannot be
-- shown) instead of passing vacuously. Analyzers in regions that are not enabled are
-- ignored. An analyzer whose status or type is NULL does not count (unknown never
-- passes).
-- DECISION: ListAnalyzers is read per region; a region that refused it (a region-deny
-- SCP answers AccessDeniedException; iam_stage.access_analyzer_regions.status 'error')
-- is unknown. all_regions: a readable region without a counting analyzer fails the
-- account whatever the unreadable ones hold; otherwise any unreadable enabled region
-- makes the verdict 'error', naming the regions and why. any_region: a counting
-- analyzer anywhere passes; with none, any unreadable region makes it 'error'.
-- DECISION: an ORGANIZATION analyzer counts only in the account that holds it (the
-- management or delegated-administrator account): ListAnalyzers in a member account does
-- not show it, so a member account passes with its own ACCOUNT analyzers (the remediation
-- says so in every version).
-- Reads: regions, access_analyzers (region_name, analyzer_type, status),
-- access_analyzer_regions. Resource: the 12-digit account id (account-level).
{% from 'macros/check.sql' import check %}
{% call check('access_analyzer_enabled', needs=['regions', 'access_analyzers']) %}
SELECT framework, check_id, account_id, account_id, 'account',
       CASE WHEN enabled = 0 THEN 'fail'
            WHEN scope = 'any_region' AND covered > 0 THEN 'pass'
            WHEN scope = 'all_regions' AND missing > 0 THEN 'fail'
            WHEN unreadable > 0 THEN 'error'
            WHEN scope = 'all_regions' THEN 'pass'
            ELSE 'fail' END,
       CASE WHEN enabled = 0
            THEN 'No enabled region was recorded for the account, so Access Analyzer coverage cannot be shown; check DescribeRegions and create an external access analyzer (type ' || types || ').'
            WHEN scope = 'any_region' AND covered > 0
            THEN format('IAM Access Analyzer has an active analyzer of type %%s in %%s of %%s enabled regions (%%s%%s).',
                        types, covered, enabled, array_to_string(covered_regions[1:10], ', '),
                        CASE WHEN covered > 10 THEN format(' and %%s more', covered - 10) ELSE '' END)
            WHEN scope = 'all_regions' AND missing > 0
            THEN format('IAM Access Analyzer has no active analyzer of type %%s in %%s of %%s enabled regions: %%s%%s%%s. Create an external access analyzer in each of them.%%s',
                        types, missing, enabled,
                        array_to_string(missing_regions[1:10], ', '),
                        CASE WHEN missing > 10 THEN format(' and %%s more', missing - 10) ELSE '' END,
                        coalesce(' (not counted: ' || others || ')', ''),
                        CASE WHEN unreadable > 0
                             THEN format(' ListAnalyzers could not be read in %%s more: %%s.', unreadable,
                                         array_to_string(unreadable_regions[1:10], '; '))
                             ELSE '' END)
            WHEN unreadable > 0
            THEN format('Could not evaluate: ListAnalyzers could not be read in %%s of %%s enabled regions: %%s%%s; %%s. Allow access-analyzer:ListAnalyzers there (exempt the audit role from the region-deny SCP) or create an analyzer and re-run.',
                        unreadable, enabled,
                        array_to_string(unreadable_regions[1:10], '; '),
                        CASE WHEN unreadable > 10 THEN format(' and %%s more', unreadable - 10) ELSE '' END,
                        CASE WHEN scope = 'all_regions'
                             THEN format('the other %%s have an active analyzer of type %%s', enabled - unreadable, types)
                             ELSE format('no readable region has an active analyzer of type %%s', types) END)
            WHEN scope = 'all_regions'
            THEN format('IAM Access Analyzer has an active analyzer of type %%s in all %%s enabled regions.', types, enabled)
            ELSE format('No enabled region (of %%s) has an active IAM Access Analyzer of type %%s%%s; create an external access analyzer.',
                        enabled, types, coalesce('; not counted: ' || others, ''))
       END
FROM (
    SELECT c.framework, c.check_id, r.account_id, c.params->>'scope' AS scope,
           array_to_string(t.types, ' or ') AS types,
           count(reg.region_name) AS enabled,
           count(reg.region_name) FILTER (WHERE reg.counted) AS covered,
           count(reg.region_name) FILTER (WHERE reg.readable AND NOT reg.counted) AS missing,
           count(reg.region_name) FILTER (WHERE NOT reg.readable AND NOT reg.counted) AS unreadable,
           array_agg(reg.region_name ORDER BY reg.region_name) FILTER (WHERE reg.readable AND NOT reg.counted) AS missing_regions,
           array_agg(reg.region_name ORDER BY reg.region_name) FILTER (WHERE reg.counted) AS covered_regions,
           array_agg(format('%%s (%%s)', reg.region_name, reg.why) ORDER BY reg.region_name)
               FILTER (WHERE NOT reg.readable AND NOT reg.counted) AS unreadable_regions,
           string_agg(reg.region_name || ' has only ' || reg.other_types, '; ' ORDER BY reg.region_name)
               FILTER (WHERE NOT reg.counted AND reg.other_types IS NOT NULL) AS others
    FROM controls c
    CROSS JOIN LATERAL (
        SELECT array_agg(x ORDER BY x) AS types FROM jsonb_array_elements_text(c.params -> 'analyzer_types') AS x
    ) AS t
    CROSS JOIN ready_accounts r
    LEFT JOIN LATERAL (
        SELECT g.region_name,
               e.region_name IS NULL AS readable,
               coalesce(e.error_code || ': ' || e.error_message, e.error_code, 'not read') AS why,
               EXISTS (SELECT 1 FROM iam_stage.access_analyzers a
                       WHERE a.snapshot_date = g.snapshot_date AND a.account_id = g.account_id
                         AND a.region_name = g.region_name AND upper(a.status) = 'ACTIVE'
                         AND upper(a.analyzer_type) = ANY(t.types)) AS counted,
               (SELECT string_agg(DISTINCT format('%%s analyzer %%s (%%s)', coalesce(a.analyzer_type, 'an untyped'),
                                                  a.analyzer_name, coalesce(a.status, 'no status')), ', '
                                  ORDER BY format('%%s analyzer %%s (%%s)', coalesce(a.analyzer_type, 'an untyped'),
                                                  a.analyzer_name, coalesce(a.status, 'no status')))
                FROM iam_stage.access_analyzers a
                WHERE a.snapshot_date = g.snapshot_date AND a.account_id = g.account_id
                  AND a.region_name = g.region_name) AS other_types
        FROM iam_stage.regions g
        LEFT JOIN iam_stage.access_analyzer_regions e
               ON e.snapshot_date = g.snapshot_date AND e.account_id = g.account_id
              AND e.region_name = g.region_name AND e.status = 'error'
        WHERE g.snapshot_date = %(snapshot_date)s AND g.account_id = r.account_id
          AND (g.opt_in_status IS NULL OR g.opt_in_status IN ('opt-in-not-required', 'opted-in'))
    ) AS reg ON true
    GROUP BY c.framework, c.check_id, c.params, t.types, r.account_id
) AS per_account
{% endcall %}
