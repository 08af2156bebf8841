-- The alert ledger: one row per (rule, finding key, channel, recipient), written by the
-- send_alerts task (src/iam_audit/alerting/alerts.py) before anything is delivered.
--   rule, alert_key        the rule (sql/alerts/<rule>.sql or the custom folder) and the
--                          finding's keys as the rule states them (they include the date
--                          the change happened, so a finding that fails again later is a
--                          new alert)
--   channel, recipient     webhook / email / slack / sns and the connection id, address
--                          or topic ARN it goes to
--   snapshot_date, run_id  the snapshot and run that found it first
--   payload, payload_digest the JSON delivered (SHA-256 of its canonical text)
--   outcome                pending (found, not delivered yet), sent, failed (last attempt
--                          failed; the next run retries it); sent_at, sent_run_id say when
--                          and by which run it was delivered
-- Exactly once: the unique key refuses a second row for the same alert whatever the run
-- (retries, reruns, two runs of a date); a row is marked sent only after its channel
-- accepted it, in the transaction that holds its row lock (no other run can send it
-- meanwhile). A process killed between delivery and that commit sends it again: the
-- payload carries the ledger key (dedup_key) for receivers that want to drop repeats.
-- Secrets never reach this table: connections stay in Airflow; last_error holds the
-- error class and the connection id, not the URL.
CREATE TABLE IF NOT EXISTS aws_policy_alert_ledger (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule text NOT NULL,
    alert_key text NOT NULL,
    channel text NOT NULL CHECK (channel IN ('webhook', 'email', 'slack', 'sns')),
    recipient text NOT NULL,
    delivery text NOT NULL CHECK (delivery IN ('immediate', 'digest')),
    account_id text,
    severity text,
    snapshot_date date NOT NULL,
    run_id text NOT NULL,
    payload jsonb NOT NULL,
    payload_digest text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    outcome text NOT NULL DEFAULT 'pending' CHECK (outcome IN ('pending', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    last_attempt_at timestamptz,
    last_error text,
    sent_at timestamptz,
    sent_run_id text,
    CHECK ((outcome = 'sent') = (sent_at IS NOT NULL)),
    UNIQUE (rule, alert_key, channel, recipient)
);
CREATE INDEX IF NOT EXISTS aws_policy_alert_ledger_unsent_idx
    ON aws_policy_alert_ledger (id) WHERE outcome <> 'sent';
CREATE INDEX IF NOT EXISTS aws_policy_alert_ledger_sent_idx
    ON aws_policy_alert_ledger (sent_at DESC) WHERE outcome = 'sent';
