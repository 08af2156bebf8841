-- name: newly_failing
-- description: >-
--   A finding of severity high or critical became fail on this snapshot (it passed or
--   was muted before, or it is a new resource that fails): one alert per control logic,
--   account and resource, naming every framework's number for it.
-- severity_floor: high
-- delivery: immediate
-- recipients: [owner]
WITH changed AS (
    SELECT coalesce(ctl.logic, c.framework || ' ' || c.check_id) AS control_logic, c.*,
           CASE c.severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2 ELSE 1 END AS rank
    FROM aws_policy_changes c
    LEFT JOIN aws_policy_controls ctl ON ctl.framework = c.framework AND ctl.check_id = c.check_id
    WHERE c.snapshot_date = %(snapshot_date)s
      AND c.change_type IN ('newly_failing', 'new_resource') AND c.current_status = 'fail'
)
SELECT concat_ws(' ', control_logic, account_id, resource_id, snapshot_date) AS alert_key,
       account_id, resource_id, min(resource_type) AS resource_type, control_logic,
       (array_agg(severity ORDER BY rank DESC))[1] AS severity,
       (array_agg(title ORDER BY rank DESC, framework DESC))[1] AS title,
       string_agg(framework || ' ' || check_id, ', ' ORDER BY framework) AS controls,
       min(reason) AS reason, snapshot_date AS failing_since,
       (array_agg(change_type))[1] AS change
FROM changed
GROUP BY control_logic, account_id, resource_id, snapshot_date
