-- The BI views of the earlier design (before the history storage), over legacy_results:
-- the reference the history views are compared with (tests/history).
-- Every verdict of aws_policy_results with its effective_status:
-- 'muted' for a fail matched by an unexpired exception (aws_policy_exceptions),
-- otherwise the raw status. The base of the other views.
CREATE OR REPLACE VIEW legacy_results_effective AS
SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
       r.resource_id, r.resource_type, r.status,
       CASE WHEN x.exception_id IS NOT NULL THEN 'muted' ELSE r.status END AS effective_status,
       r.reason, x.exception_id, x.exception_reason, x.exception_expires_on,
       r.control_logic, r.run_id, r.evaluated_at
FROM legacy_results r
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, r.framework, r.check_id, r.account_id, r.resource_id, r.status) x ON true;

-- The snapshots in which a control was evaluated for an account: one row per
-- (framework, check_id, account_id, snapshot_date) that has verdicts and no
-- account-level 'error' (the check could not run because data was missing).
-- previous/next_snapshot_date are the neighbouring evaluated snapshots. The
-- change and streak views use the same definition (computed inline with window
-- functions), so a day on which an account could not be audited neither
-- "removes" nor "resolves" anything.
CREATE OR REPLACE VIEW legacy_evaluated_snapshots AS
SELECT s.framework, s.check_id, s.account_id, s.snapshot_date,
       lag(s.snapshot_date) OVER w AS previous_snapshot_date,
       lead(s.snapshot_date) OVER w AS next_snapshot_date,
       row_number() OVER w AS snapshot_seq,
       lead(s.snapshot_date) OVER w IS NULL AS is_latest
FROM (SELECT DISTINCT snapshot_date, framework, check_id, account_id FROM legacy_results) s
WHERE NOT EXISTS (
    SELECT 1 FROM legacy_results e
    WHERE e.snapshot_date = s.snapshot_date AND e.framework = s.framework
      AND e.check_id = s.check_id AND e.account_id = s.account_id
      AND e.resource_id = s.account_id AND e.status = 'error')
WINDOW w AS (PARTITION BY s.framework, s.check_id, s.account_id ORDER BY s.snapshot_date);

-- The latest verdict of every (framework, check_id, account_id, resource_id):
-- the row of the newest snapshot_date that has a verdict for it. is_current is
-- true when that snapshot is also the newest one of the control in the account
-- (false for resources that have since disappeared, or when the newest run
-- could only record an account-level 'error').
CREATE OR REPLACE VIEW legacy_latest AS
SELECT r.framework, r.check_id, r.account_id, r.resource_id, r.snapshot_date,
       r.title, r.severity, r.resource_type, r.status,
       CASE WHEN x.exception_id IS NOT NULL THEN 'muted' ELSE r.status END AS effective_status,
       r.reason, x.exception_id, x.exception_reason, x.exception_expires_on,
       r.snapshot_date = max(r.snapshot_date) OVER (
           PARTITION BY r.framework, r.check_id, r.account_id) AS is_current,
       r.control_logic, r.run_id, r.evaluated_at
FROM (
    SELECT DISTINCT ON (framework, check_id, account_id, resource_id) *
    FROM legacy_results
    ORDER BY framework, check_id, account_id, resource_id, snapshot_date DESC
) r
LEFT JOIN LATERAL aws_policy_matching_exception(
    r.snapshot_date, r.framework, r.check_id, r.account_id, r.resource_id, r.status) x ON true;

-- Counts per snapshot x framework x control x account, by effective status.
-- pass_rate = pass / (pass + fail) as a fraction 0..1 (4 decimals): muted fails
-- and errors are in neither numerator nor denominator; NULL when there is no
-- pass and no fail. To aggregate, sum the counts, never average pass_rate.
CREATE OR REPLACE VIEW legacy_scores AS
SELECT snapshot_date, framework, check_id, account_id,
       max(title) AS title, max(severity) AS severity,
       count(*) FILTER (WHERE effective_status = 'pass') AS pass_count,
       count(*) FILTER (WHERE effective_status = 'fail') AS fail_count,
       count(*) FILTER (WHERE effective_status = 'error') AS error_count,
       count(*) FILTER (WHERE effective_status = 'muted') AS muted_count,
       count(*) AS total_count,
       round(count(*) FILTER (WHERE effective_status = 'pass')::numeric
             / nullif(count(*) FILTER (WHERE effective_status IN ('pass', 'fail')), 0), 4) AS pass_rate
FROM legacy_results_effective
GROUP BY snapshot_date, framework, check_id, account_id;

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
CREATE OR REPLACE VIEW legacy_changes AS
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
    FROM legacy_results_effective r
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

-- Findings open now: resources whose verdict is an unmuted 'fail' in the latest
-- evaluated snapshot of their control in their account. first_failing_date
-- starts the current unbroken failing streak: consecutive evaluated snapshots
-- with a raw 'fail' (muted days count as failing; a 'pass' or the resource's
-- absence breaks the streak; snapshots where the account could not be evaluated
-- are skipped). age_days = snapshot_date - first_failing_date (0 = new today).
CREATE OR REPLACE VIEW legacy_open_findings AS
WITH evaluated AS (
    -- verdicts of evaluated snapshots (an account-level 'error' is the only verdict of its snapshot),
    -- numbered per control and account, with the control's latest evaluated snapshot
    SELECT r.snapshot_date, r.framework, r.check_id, r.title, r.severity, r.account_id,
           r.resource_id, r.resource_type, r.status, r.reason, r.control_logic,
           dense_rank() OVER c AS snapshot_seq,
           max(r.snapshot_date) OVER (PARTITION BY r.framework, r.check_id, r.account_id) AS latest_date
    FROM legacy_results r
    WHERE NOT (r.status = 'error' AND r.resource_id = r.account_id)
    WINDOW c AS (PARTITION BY r.framework, r.check_id, r.account_id ORDER BY r.snapshot_date)
),
fails AS (
    SELECT e.*, e.snapshot_date = e.latest_date AS is_latest,
           e.snapshot_seq - row_number() OVER (
               PARTITION BY e.framework, e.check_id, e.account_id, e.resource_id
               ORDER BY e.snapshot_date) AS streak
    FROM evaluated e
    WHERE e.status = 'fail'
),
streaks AS (
    SELECT *, min(snapshot_date) OVER (
               PARTITION BY framework, check_id, account_id, resource_id, streak) AS first_failing_date
    FROM fails
)
SELECT f.framework, f.check_id, f.account_id, f.resource_id, f.snapshot_date,
       f.title, f.severity, f.resource_type, f.reason,
       f.first_failing_date, f.snapshot_date - f.first_failing_date AS age_days,
       f.control_logic
FROM streaks f
LEFT JOIN LATERAL aws_policy_matching_exception(
    f.snapshot_date, f.framework, f.check_id, f.account_id, f.resource_id, 'fail') x ON true
WHERE f.is_latest AND x.exception_id IS NULL;

