-- name: resolved
-- description: >-
--   A failing finding now passes (fixed, not muted): listed in the daily digest, one
--   line per control logic, account and resource.
-- delivery: digest
-- recipients: [owner]
WITH changed AS (
    SELECT coalesce(ctl.logic, c.framework || ' ' || c.check_id) AS control_logic, c.*,
           CASE c.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END AS rank
    FROM aws_policy_changes c
    LEFT JOIN aws_policy_controls ctl ON ctl.framework = c.framework AND ctl.check_id = c.check_id
    WHERE c.snapshot_date = %(snapshot_date)s AND c.change_type = 'resolved'
)
SELECT concat_ws(' ', 'resolved', control_logic, account_id, resource_id, snapshot_date) AS alert_key,
       account_id, resource_id, min(resource_type) AS resource_type, control_logic,
       (array_agg(severity ORDER BY rank DESC))[1] AS severity,
       (array_agg(title ORDER BY rank DESC, framework DESC))[1] AS title,
       string_agg(framework || ' ' || check_id, ', ' ORDER BY framework) AS controls,
       min(reason) AS reason
FROM changed
GROUP BY control_logic, account_id, resource_id, snapshot_date
