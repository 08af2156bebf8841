-- name: baseline
-- description: >-
--   The first time an account is evaluated with alerts on (no baseline of it in the
--   ledger yet): one summary (open findings
--   per severity and the worst ones) instead of one alert per finding that existed
--   before anyone was told.
-- delivery: digest
-- recipients: [owner]
WITH first_time AS (
    SELECT f.account_id FROM aws_policy_account_freshness f
    WHERE f.latest_snapshot_date = %(snapshot_date)s
      AND NOT EXISTS (SELECT 1 FROM aws_policy_alert_ledger l
                      WHERE l.rule = 'baseline' AND l.alert_key = 'baseline ' || f.account_id)
),
problems AS (
    SELECT o.account_id, o.control_logic, o.resource_id,
           max(CASE o.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END) AS rank,
           min(o.title) AS title, min(o.first_failing_date) AS since
    FROM aws_policy_open_findings o JOIN first_time f USING (account_id)
    GROUP BY o.account_id, o.control_logic, o.resource_id
)
SELECT 'baseline ' || f.account_id AS alert_key, f.account_id,
       coalesce((SELECT (ARRAY['low', 'medium', 'high', 'critical'])[max(p.rank)] FROM problems p
                 WHERE p.account_id = f.account_id), 'low') AS severity,
       'Baseline: open findings when alerting started' AS title,
       'account ' || f.account_id AS resource_id,
       coalesce((SELECT format('%%s open findings (%%s critical, %%s high, %%s medium, %%s low). Worst: %%s',
                               count(*), count(*) FILTER (WHERE p.rank = 4), count(*) FILTER (WHERE p.rank = 3),
                               count(*) FILTER (WHERE p.rank = 2), count(*) FILTER (WHERE p.rank = 1),
                               (SELECT string_agg(w.title || ' on ' || w.resource_id, '; ')
                                FROM (SELECT * FROM problems w WHERE w.account_id = f.account_id
                                      ORDER BY w.rank DESC, w.since, w.resource_id LIMIT 5) w))
                 FROM problems p WHERE p.account_id = f.account_id), 'No open findings.') AS reason
FROM first_time f
