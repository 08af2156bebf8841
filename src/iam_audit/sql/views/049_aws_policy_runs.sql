-- The run that evaluated each control logic for an account on a snapshot date, for
-- links from dashboards to the run (the run_id and evaluated_at of the
-- aws_policy_results rows of that date, account and logic, one row per evaluation
-- instead of one per verdict). Only evaluations with verdicts.
CREATE OR REPLACE VIEW aws_policy_runs AS
SELECT e.snapshot_date, e.account_id, e.control_logic, e.run_id, e.evaluated_at
FROM aws_policy_evaluations e
WHERE e.pass_count + e.fail_count + e.error_count > 0;
