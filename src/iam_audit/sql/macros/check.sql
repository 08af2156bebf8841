{#-
  Wraps a check's verdict query so that every check writes its verdicts the same
  way, in one transaction (sql/functions/011_history.sql):
    0. wait for the snapshot date's lock (iam_audit_lock_for_check: no load and
       no run of the same check of the date writes at the same time);
    1. aws_policy_begin_check registers the logic's variants (one per distinct
       params of the requested frameworks) and the date's scopes;
    2. the body evaluates one representative control per variant;
    3. aws_policy_finish_check records one evaluation per (variant, account) of
       the snapshot ('error' when the needed data sets were not collected) and
       rewrites only the verdict intervals that change.
  aws_policy_results (a view) expands each variant's verdicts to every framework
  control that uses it.
  The body is a SELECT returning (framework, check_id, account_id, resource_id,
  resource_type, status, reason). It may use the CTEs
    controls       - one row per distinct params of this logic among the requested
                     frameworks (a representative framework and check_id), with
                     the params (jsonb);
    ready_accounts - (account_id, as_of) of the snapshot's accounts whose data is
                     complete; as_of is the extraction time, the "now" of every
                     age computation, so re-evaluating a stored snapshot is stable.
  Bind parameters: %(snapshot_date)s, %(run_id)s, %(frameworks)s (text[]).
  A literal percent sign in a body must be written %%.
-#}
{% macro check(logic, needs) -%}
{%- set needs_array -%}
ARRAY[{% for dataset in needs %}'{{ dataset }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[]
{%- endset -%}
SELECT iam_audit_lock_for_check(%(snapshot_date)s::date, '{{ logic }}');

SELECT aws_policy_begin_check(%(snapshot_date)s::date, '{{ logic }}', %(frameworks)s::text[]);

INSERT INTO _check_body (framework, check_id, account_id, resource_id, resource_type, status, reason)
WITH controls AS (
    SELECT framework, check_id, title, severity, params
    FROM _check_controls
    WHERE representative
),
readiness AS (
    SELECT * FROM iam_audit_account_readiness(%(snapshot_date)s::date, {{ needs_array }})
),
ready_accounts AS (
    SELECT account_id, as_of FROM readiness WHERE ready
),
verdicts (framework, check_id, account_id, resource_id, resource_type, status, reason) AS (
{{ caller() }}
)
SELECT framework, check_id, account_id, resource_id, resource_type, status, reason FROM verdicts;

SELECT aws_policy_finish_check(%(snapshot_date)s::date, '{{ logic }}', {{ needs_array }}, %(run_id)s);
{%- endmacro %}
