-- What changed for each resource between consecutive evaluated snapshots of its
-- control in its account (aws_policy_evaluated_snapshots): snapshot_date is the
-- later one, previous_snapshot_date the earlier one. Statuses are effective.
--   newly_failing     present in both, now 'fail', before 'pass' or 'muted'
--                     (an exception that expired makes a finding newly failing)
--   resolved          present in both, now 'pass', before 'fail' or 'muted'
--   new_resource      present now, absent before (current_status says how it fares)
--   removed_resource  present before, absent now (current_status is NULL)
-- The first evaluated snapshot of a control in an account has no changes.
-- From interval boundaries: per evaluation and its previous evaluated date, only
-- the resources whose interval started after the previous date or ended before
-- this one, and the fails an exception could mute on either date, are compared;
-- a filter on snapshot_date (and account_id, framework, check_id) reads one day.
-- Plan: the resources and their verdicts on both dates are found once per
-- evaluation (the GROUP BY subquery is not flattened into the scopes join, and
-- filters on its columns still push down), before they are spread over the
-- frameworks sharing the variant; the muting candidates are driven from the
-- exceptions (none: nothing to read) that apply on one of the two dates and not
-- the other (created after the earlier date or expiring before the later one;
-- same account, naming a framework or control the variant answers); each verdict lookup is one backward probe
-- of the primary key (intervals of a resource do not overlap).
-- When a control's params change in the catalogue, its first date under the new
-- params is compared with the previous date of the same params (none: no changes).
CREATE OR REPLACE VIEW aws_policy_changes AS
SELECT c.change_type, r.snapshot_date, r.previous_snapshot_date, s.framework, s.check_id,
       CASE WHEN c.change_type = 'removed_resource' THEN sp.title ELSE s.title END AS title,
       CASE WHEN c.change_type = 'removed_resource' THEN sp.severity ELSE s.severity END AS severity,
       r.account_id, r.resource_id,
       coalesce(r.d_type, r.p_type) AS resource_type,
       c.previous_status, c.current_status,
       coalesce(r.d_reason, r.p_reason) AS reason
FROM (
    SELECT pr.snapshot_date, pr.previous_snapshot_date, pr.variant_id, pr.account_id, k.resource_id,
           vd.resource_type AS d_type, vd.status AS d_status, vd.reason AS d_reason,
           vp.resource_type AS p_type, vp.status AS p_status, vp.reason AS p_reason
    FROM (
        SELECT e.snapshot_date, e.variant_id, e.account_id, pv.snapshot_date AS previous_snapshot_date
        FROM aws_policy_evaluations e
        CROSS JOIN LATERAL (
            SELECT p.snapshot_date FROM aws_policy_evaluations p
            WHERE p.variant_id = e.variant_id AND p.account_id = e.account_id AND p.snapshot_date < e.snapshot_date
              AND p.evaluated AND p.pass_count + p.fail_count + p.error_count > 0
            ORDER BY p.snapshot_date DESC LIMIT 1
        ) pv
        WHERE e.evaluated AND e.pass_count + e.fail_count + e.error_count > 0
    ) pr
    CROSS JOIN LATERAL (
        -- arrivals: intervals covering this date that started after the previous one
        SELECT i.resource_id FROM aws_policy_verdicts i
        WHERE i.variant_id = pr.variant_id AND i.account_id = pr.account_id
          AND i.valid_from > pr.previous_snapshot_date AND i.valid_from <= pr.snapshot_date
          AND i.valid_to >= pr.snapshot_date
        UNION
        -- departures: intervals covering the previous date that ended before this one
        SELECT i.resource_id FROM aws_policy_verdicts i
        WHERE i.variant_id = pr.variant_id AND i.account_id = pr.account_id
          AND i.valid_to >= pr.previous_snapshot_date AND i.valid_to < pr.snapshot_date
          AND i.valid_from <= pr.previous_snapshot_date
        UNION
        -- fails an exception could mute on one of the dates and not the other (a superset of
        -- those whose muting differs: a verdict unchanged between the dates is muted on a date
        -- exactly when some exception applies on it)
        SELECT i.resource_id
        FROM aws_policy_exceptions ex
        JOIN aws_policy_verdicts i
          ON i.variant_id = pr.variant_id AND i.account_id = pr.account_id AND i.status = 'fail'
         AND i.valid_from <= pr.snapshot_date AND i.valid_to >= pr.previous_snapshot_date
         AND (ex.resource_pattern IS NULL OR i.resource_id LIKE ex.resource_pattern)
        WHERE ex.expires_on >= pr.previous_snapshot_date
          AND (ex.created_at AT TIME ZONE 'UTC')::date <= pr.snapshot_date
          -- one that applies on both dates mutes the same fails on both: no change of its own
          AND NOT ((ex.created_at AT TIME ZONE 'UTC')::date <= pr.previous_snapshot_date
                   AND ex.expires_on >= pr.snapshot_date)
          AND (ex.account_id IS NULL OR ex.account_id = pr.account_id)
          -- the exception names a framework or control that the variant answers on either date
          AND (ex.framework IS NULL AND ex.check_id IS NULL
               OR EXISTS (SELECT 1 FROM aws_policy_scopes sx
                          WHERE sx.variant_id = pr.variant_id
                            AND sx.snapshot_date IN (pr.snapshot_date, pr.previous_snapshot_date)
                            AND (ex.framework IS NULL OR sx.framework = ex.framework)
                            AND (ex.check_id IS NULL OR sx.check_id = ex.check_id)))
    ) k
    LEFT JOIN LATERAL (
        SELECT n.resource_type, n.status, n.reason
        FROM (SELECT i.resource_type, i.status, i.reason, i.valid_to FROM aws_policy_verdicts i
              WHERE i.variant_id = pr.variant_id AND i.account_id = pr.account_id AND i.resource_id = k.resource_id
                AND i.valid_from <= pr.snapshot_date
              ORDER BY i.valid_from DESC LIMIT 1) n
        WHERE n.valid_to >= pr.snapshot_date
    ) vd ON true
    LEFT JOIN LATERAL (
        SELECT n.resource_type, n.status, n.reason
        FROM (SELECT i.resource_type, i.status, i.reason, i.valid_to FROM aws_policy_verdicts i
              WHERE i.variant_id = pr.variant_id AND i.account_id = pr.account_id AND i.resource_id = k.resource_id
                AND i.valid_from <= pr.previous_snapshot_date
              ORDER BY i.valid_from DESC LIMIT 1) n
        WHERE n.valid_to >= pr.previous_snapshot_date
    ) vp ON true
    GROUP BY pr.snapshot_date, pr.previous_snapshot_date, pr.variant_id, pr.account_id, k.resource_id,
             vd.resource_type, vd.status, vd.reason, vp.resource_type, vp.status, vp.reason
) r
JOIN aws_policy_scopes s ON s.snapshot_date = r.snapshot_date AND s.variant_id = r.variant_id
JOIN aws_policy_scopes sp
  ON sp.snapshot_date = r.previous_snapshot_date AND sp.framework = s.framework AND sp.check_id = s.check_id
 AND sp.variant_id = r.variant_id
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, s.framework, s.check_id, r.account_id, r.resource_id, r.d_status) xd ON true
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.previous_snapshot_date, s.framework, s.check_id, r.account_id, r.resource_id, r.p_status) xp ON true
CROSS JOIN LATERAL (
    SELECT CASE WHEN xd.exception_id IS NOT NULL THEN 'muted' ELSE r.d_status END AS now_status,
           CASE WHEN xp.exception_id IS NOT NULL THEN 'muted' ELSE r.p_status END AS before_status
) st
CROSS JOIN LATERAL (
    SELECT CASE WHEN r.d_status IS NOT NULL AND r.p_status IS NULL THEN 'new_resource'
                WHEN r.d_status IS NULL AND r.p_status IS NOT NULL THEN 'removed_resource'
                WHEN st.now_status = 'fail' AND st.before_status IN ('pass', 'muted') THEN 'newly_failing'
                WHEN st.now_status = 'pass' AND st.before_status IN ('fail', 'muted') THEN 'resolved'
           END AS change_type,
           st.before_status AS previous_status, st.now_status AS current_status
) c
WHERE c.change_type IS NOT NULL;
