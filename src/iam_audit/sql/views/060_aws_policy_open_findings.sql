-- Findings open now: resources whose verdict is an unmuted 'fail' in the latest
-- evaluated snapshot of their control in their account. first_failing_date
-- starts the current unbroken failing streak: consecutive evaluated snapshots
-- with a raw 'fail' (muted days count as failing; a 'pass' or the resource's
-- absence breaks the streak; snapshots where the account could not be evaluated
-- are skipped). age_days = snapshot_date - first_failing_date (0 = new today).
-- From the history: the failing intervals covering each (variant, account)'s
-- latest evaluated date, with the streak start the writer stores on each
-- failing interval (aws_policy_verdicts.failing_since, kept by
-- aws_policy_refresh_streaks on every write, replay, removal and expiry).
-- Plan: the scopes of each interval are one probe of their index (OFFSET 0:
-- never a scan of every date's scopes per interval).
CREATE OR REPLACE VIEW aws_policy_open_findings AS
SELECT s.framework, s.check_id, f.account_id, f.resource_id, f.snapshot_date,
       s.title, s.severity, f.resource_type, f.reason,
       f.first_failing_date, f.snapshot_date - f.first_failing_date AS age_days,
       f.control_logic
FROM (
    SELECT l.variant_id, l.account_id, i.resource_id, l.snapshot_date, l.control_logic, i.resource_type, i.reason,
           i.failing_since AS first_failing_date
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
