-- What changed for each resource between consecutive evaluated snapshots of its
-- control in its account (aws_policy_evaluated_snapshots): snapshot_date is the
-- later one, previous_snapshot_date the earlier one. Statuses are effective.
--   newly_failing     present in both, now 'fail', before 'pass' or 'muted'
--                     (an exception that expired makes a finding newly failing)
--   resolved          present in both, now 'pass', before 'fail' or 'muted'
--   new_resource      present now, absent before (current_status says how it fares)
--   removed_resource  present before, absent now (current_status is NULL)
-- The first evaluated snapshot of a control in an account has no changes.
-- Window functions only (no self-join): the neighbouring evaluated snapshots of the
-- control in the account, and each resource's own previous/next verdict; every verdict yields at most
-- its arrival change and the removal at the next snapshot. Filters on framework,
-- check_id, account_id and resource_id are pushed below the windows.
CREATE OR REPLACE VIEW aws_policy_changes AS
SELECT c.change_type, c.snapshot_date, c.previous_snapshot_date, h.framework, h.check_id, h.title,
       h.severity, h.account_id, h.resource_id, h.resource_type, c.previous_status, c.current_status,
       h.reason
FROM (
    SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
           r.resource_id, r.resource_type, r.effective_status, r.reason,
           max(r.snapshot_date) OVER (PARTITION BY r.framework, r.check_id, r.account_id ORDER BY r.snapshot_date
                                      RANGE BETWEEN UNBOUNDED PRECEDING AND '1 day' PRECEDING)
               AS previous_snapshot_date,
           min(r.snapshot_date) OVER (PARTITION BY r.framework, r.check_id, r.account_id ORDER BY r.snapshot_date
                                      RANGE BETWEEN '1 day' FOLLOWING AND UNBOUNDED FOLLOWING)
               AS next_snapshot_date,
           lag(r.snapshot_date) OVER w AS resource_previous_date,
           lag(r.effective_status) OVER w AS resource_previous_status,
           lead(r.snapshot_date) OVER w AS resource_next_date
    FROM aws_policy_results_effective r
    -- evaluated snapshots only: an account-level 'error' is the only verdict of its snapshot
    WHERE NOT (r.status = 'error' AND r.resource_id = r.account_id)
    WINDOW w AS (PARTITION BY r.framework, r.check_id, r.account_id, r.resource_id ORDER BY r.snapshot_date)
) h
CROSS JOIN LATERAL (VALUES
    (CASE WHEN h.previous_snapshot_date IS NULL THEN NULL
          WHEN h.resource_previous_date IS DISTINCT FROM h.previous_snapshot_date THEN 'new_resource'
          WHEN h.effective_status = 'fail' AND h.resource_previous_status IN ('pass', 'muted')
              THEN 'newly_failing'
          WHEN h.effective_status = 'pass' AND h.resource_previous_status IN ('fail', 'muted')
              THEN 'resolved'
     END,
     h.snapshot_date, h.previous_snapshot_date,
     CASE WHEN h.resource_previous_date = h.previous_snapshot_date THEN h.resource_previous_status END,
     h.effective_status),
    (CASE WHEN h.next_snapshot_date IS NOT NULL
               AND h.resource_next_date IS DISTINCT FROM h.next_snapshot_date THEN 'removed_resource' END,
     h.next_snapshot_date, h.snapshot_date, h.effective_status, NULL)
) AS c (change_type, snapshot_date, previous_snapshot_date, previous_status, current_status)
WHERE c.change_type IS NOT NULL;
