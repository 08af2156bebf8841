{#-
  Wraps a check's verdict query so that every check writes legacy_results the
  same way, in one transaction:
    1. delete this snapshot's earlier verdicts of the check for the snapshot's accounts;
    2. insert one verdict per (framework, control, resource) from the body, plus one
       'error' verdict per account whose needed data sets were not collected.
  The body is a SELECT returning (framework, check_id, account_id, resource_id,
  resource_type, status, reason). It may use the CTEs
    controls       - catalogue rows of this logic for the requested frameworks,
                     with their per-version params (jsonb);
    ready_accounts - (account_id, as_of) of the snapshot's accounts whose data is
                     complete; as_of is the extraction time, the "now" of every
                     age computation, so re-evaluating a stored snapshot is stable.
  Bind parameters: %(snapshot_date)s, %(run_id)s, %(frameworks)s (text[]).
  A literal percent sign in a body must be written %%.
-#}
{% macro check(logic, needs) -%}
DELETE FROM legacy_results
WHERE snapshot_date = %(snapshot_date)s
  AND control_logic = '{{ logic }}'
  AND framework = ANY(%(frameworks)s)
  AND account_id IN (SELECT account_id FROM iam_stage.accounts WHERE snapshot_date = %(snapshot_date)s);

INSERT INTO legacy_results (
    snapshot_date, framework, check_id, title, severity, account_id, resource_id,
    resource_type, status, reason, run_id, evaluated_at, control_logic)
WITH controls AS (
    SELECT framework, check_id, title, severity, params
    FROM aws_policy_controls
    WHERE logic = '{{ logic }}' AND framework = ANY(%(frameworks)s)
),
readiness AS (
    SELECT * FROM iam_audit_account_readiness(
        %(snapshot_date)s::date,
        ARRAY[{% for dataset in needs %}'{{ dataset }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[])
),
ready_accounts AS (
    SELECT account_id, as_of FROM readiness WHERE ready
),
verdicts (framework, check_id, account_id, resource_id, resource_type, status, reason) AS (
{{ caller() }}
),
errors AS (
    SELECT c.framework, c.check_id, r.account_id, r.account_id AS resource_id,
           'account' AS resource_type, 'error' AS status,
           'Could not evaluate: ' || r.reason AS reason
    FROM controls c CROSS JOIN readiness r
    WHERE NOT r.ready
)
SELECT %(snapshot_date)s::date, c.framework, c.check_id, c.title, c.severity,
       v.account_id, v.resource_id, v.resource_type, v.status, v.reason,
       %(run_id)s, now(), '{{ logic }}'
FROM (SELECT * FROM verdicts UNION ALL SELECT * FROM errors) AS v
JOIN controls c USING (framework, check_id);
{%- endmacro %}
