-- Findings open now: resources whose verdict is an unmuted 'fail' in the latest
-- evaluated snapshot of their control in their account. first_failing_date
-- starts the current unbroken failing streak: consecutive evaluated snapshots
-- with a raw 'fail' (muted days count as failing; a 'pass' or the resource's
-- absence breaks the streak; snapshots where the account could not be evaluated
-- are skipped). age_days = snapshot_date - first_failing_date (0 = new today).
-- From the history: the failing intervals covering each (variant, account)'s
-- latest evaluated date; the streak walks back interval by interval (a reason
-- that changes while the resource keeps failing starts a new interval, not a
-- new streak).
-- Plan: the streak is computed once per failing interval, before the interval is
-- spread over the frameworks that share its variant (GROUP BY keeps the subquery
-- from being flattened into the scopes join while filters on its columns still
-- push down); the recursive walk only starts when the evaluated date before the
-- interval also failed (rare: a reason changed while failing). The scopes of each
-- interval are one probe of their index (OFFSET 0: never a scan of every date's
-- scopes per interval); the previous interval is one backward probe of the key.
CREATE OR REPLACE VIEW aws_policy_open_findings AS
SELECT s.framework, s.check_id, f.account_id, f.resource_id, f.snapshot_date,
       s.title, s.severity, f.resource_type, f.reason,
       f.first_failing_date, f.snapshot_date - f.first_failing_date AS age_days,
       f.control_logic
FROM (
    SELECT l.variant_id, l.account_id, i.resource_id, l.snapshot_date, l.control_logic, i.resource_type, i.reason,
           CASE WHEN pf.valid_from IS NULL THEN i.valid_from
                ELSE (WITH RECURSIVE walk (valid_from) AS (
                          SELECT pf.valid_from
                          UNION ALL
                          SELECT f.valid_from
                          FROM walk w
                          CROSS JOIN LATERAL (
                              SELECT p.snapshot_date FROM aws_policy_evaluations p
                              WHERE p.variant_id = l.variant_id AND p.account_id = l.account_id
                                AND p.snapshot_date < w.valid_from
                                AND p.evaluated AND p.pass_count + p.fail_count + p.error_count > 0
                              ORDER BY p.snapshot_date DESC LIMIT 1
                          ) pd
                          JOIN aws_policy_verdicts f
                            ON f.variant_id = l.variant_id AND f.account_id = l.account_id
                           AND f.resource_id = i.resource_id AND f.status = 'fail'
                           AND f.valid_from <= pd.snapshot_date AND f.valid_to >= pd.snapshot_date
                      )
                      SELECT min(valid_from) FROM walk)
           END AS first_failing_date
    FROM (
        SELECT pl.variant_id, pl.account_id, pl.latest_evaluated_date AS snapshot_date, e.control_logic
        FROM aws_policy_pairs pl
        JOIN aws_policy_evaluations e
          ON e.snapshot_date = pl.latest_evaluated_date AND e.variant_id = pl.variant_id
         AND e.account_id = pl.account_id
    ) l
    JOIN aws_policy_verdicts i
      ON i.variant_id = l.variant_id AND i.account_id = l.account_id AND i.status = 'fail'
     AND i.valid_from <= l.snapshot_date AND i.valid_to >= l.snapshot_date
    -- the evaluated date before the interval, and a failing interval of the resource covering it
    LEFT JOIN LATERAL (
        SELECT p.snapshot_date FROM aws_policy_evaluations p
        WHERE p.variant_id = l.variant_id AND p.account_id = l.account_id AND p.snapshot_date < i.valid_from
          AND p.evaluated AND p.pass_count + p.fail_count + p.error_count > 0
        ORDER BY p.snapshot_date DESC LIMIT 1
    ) pd ON true
    LEFT JOIN LATERAL (
        SELECT f.valid_from
        FROM (SELECT f.valid_from, f.valid_to, f.status FROM aws_policy_verdicts f
              WHERE f.variant_id = l.variant_id AND f.account_id = l.account_id AND f.resource_id = i.resource_id
                AND f.valid_from <= pd.snapshot_date
              ORDER BY f.valid_from DESC LIMIT 1) f
        WHERE f.status = 'fail' AND f.valid_to >= pd.snapshot_date
    ) pf ON true
    GROUP BY l.variant_id, l.account_id, i.resource_id, l.snapshot_date, l.control_logic, i.resource_type,
             i.reason, i.valid_from, pf.valid_from
) f
CROSS JOIN LATERAL (
    SELECT s.framework, s.check_id, s.title, s.severity FROM aws_policy_scopes s
    WHERE s.snapshot_date = f.snapshot_date AND s.variant_id = f.variant_id
    OFFSET 0
) s
-- (the first test is evaluated once: without exceptions no row asks for one)
WHERE NOT EXISTS (SELECT 1 FROM aws_policy_exceptions)
   OR NOT EXISTS (SELECT 1 FROM aws_policy_matching_exception(
                      f.snapshot_date, s.framework, s.check_id, f.account_id, f.resource_id, 'fail'));
