-- names and freshness of the accounts of the shown findings
SELECT account_id, account_name, is_stale FROM aws_policy_account_freshness
WHERE account_id = ANY(%(accounts)s::text[])
