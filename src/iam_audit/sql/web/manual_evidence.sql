-- the organisation facts of the newest date next to each manual control that has evidence; never verdicts.
-- {filters}: a fixed fragment of iam_audit.web.queries, never text from the request
WITH latest AS (SELECT max(snapshot_date) AS d FROM aws_policy_manual_evidence),
facts AS (
    SELECT e.*, row_number() OVER w AS n, count(*) OVER p AS total,
           count(*) FILTER (WHERE e.attention) OVER p AS flagged
    FROM aws_policy_manual_evidence e JOIN latest ON e.snapshot_date = latest.d
    WHERE true {filters}
    WINDOW p AS (PARTITION BY e.framework, e.check_id),
           w AS (PARTITION BY e.framework, e.check_id
                 ORDER BY e.attention DESC, e.evidence, e.account_id NULLS FIRST, e.subject)
)
SELECT snapshot_date, framework, check_id, title, evidence, account_id, account_name, subject, detail,
       attention, total, flagged
FROM facts WHERE n <= %(limit)s
