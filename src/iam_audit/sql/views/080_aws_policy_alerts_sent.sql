-- The alerts delivered, newest first (the Compliance page lists the last ones): one
-- row per alert and recipient from the alert ledger (sql/migrations/0001_baseline.sql),
-- without its payload.
CREATE OR REPLACE VIEW aws_policy_alerts_sent AS
SELECT l.sent_at, l.rule, l.delivery, l.channel, l.recipient, l.account_id, l.severity,
       l.payload ->> 'title' AS title, l.payload ->> 'resource_id' AS resource_id,
       l.snapshot_date, l.run_id, l.sent_run_id, l.attempts
FROM aws_policy_alert_ledger l
WHERE l.outcome = 'sent';
