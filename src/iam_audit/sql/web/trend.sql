-- the org-wide sums per date and framework, summed per variant before they are spread over the
-- frameworks (aws_policy_scores would spread every evaluation first); accounts: every control of a
-- run evaluates the same accounts
SELECT snapshot_date, framework, pass_count, fail_count, error_count, muted_count, accounts
FROM aws_policy_framework_scores
WHERE snapshot_date = ANY(%(dates)s::date[])
ORDER BY snapshot_date, framework
