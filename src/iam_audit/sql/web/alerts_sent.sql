-- the last alerts the send_alerts task delivered (absent before the alert ledger exists)
SELECT sent_at, rule, channel, recipient, account_id, severity, title, resource_id FROM aws_policy_alerts_sent ORDER BY sent_at DESC LIMIT %(limit)s
