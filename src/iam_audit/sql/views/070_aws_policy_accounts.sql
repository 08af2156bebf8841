-- The audited accounts of each snapshot with their names, for dashboard labels:
-- readers of the views get the names without any access to iam_stage.
CREATE OR REPLACE VIEW aws_policy_accounts AS
SELECT snapshot_date, account_id, account_name, extracted_at
FROM iam_stage.accounts;
