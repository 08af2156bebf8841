-- The snapshot dates that have verdicts, newest first in most uses: a cheap
-- "latest date" for dashboards (SELECT max(snapshot_date) FROM aws_policy_snapshots)
-- where max() over the aws_policy_results view would read every row.
CREATE OR REPLACE VIEW aws_policy_snapshots AS
SELECT DISTINCT snapshot_date FROM aws_policy_scopes;
