-- Upgrade in place from the earlier design, where aws_policy_results was a table
-- with one row per snapshot_date x framework x control x resource. Runs inside
-- apply_schema's transaction, once: the table is renamed
-- aws_policy_results_legacy and every date is written into the history in date
-- order through aws_policy_store_evaluation, one variant per framework control
-- (so no verdict can be merged with another framework's), keeping each
-- account's run_id and evaluated_at. sql/views/990_drop_legacy_results.sql
-- compares the new view with the old table row for row and drops the old table
-- only when they agree and nothing else depends on it.
DO $$
DECLARE
    d date;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('aws_policy_results')) IS DISTINCT FROM 'r' THEN
        RETURN;
    END IF;
    ALTER TABLE aws_policy_results RENAME TO aws_policy_results_legacy;
    INSERT INTO aws_policy_variants (control_logic, params)
    SELECT DISTINCT coalesce(control_logic, ''), jsonb_build_object('framework', framework, 'check_id', check_id)
    FROM aws_policy_results_legacy
    ON CONFLICT (control_logic, params) DO NOTHING;
    FOR d IN SELECT DISTINCT snapshot_date FROM aws_policy_results_legacy ORDER BY 1 LOOP
        DROP TABLE IF EXISTS pg_temp._legacy_day, pg_temp._eval_pairs, pg_temp._eval_verdicts;
        CREATE TEMP TABLE _legacy_day ON COMMIT DROP AS
        SELECT r.*, v.variant_id,
               (r.status = 'error' AND r.resource_id = r.account_id AND r.resource_type = 'account'
                AND r.reason LIKE 'Could not evaluate: %') AS is_load_error
        FROM aws_policy_results_legacy r
        JOIN aws_policy_variants v
          ON v.control_logic = coalesce(r.control_logic, '')
         AND v.params = jsonb_build_object('framework', r.framework, 'check_id', r.check_id)
        WHERE r.snapshot_date = d;
        INSERT INTO aws_policy_scopes (snapshot_date, framework, check_id, variant_id, title, severity)
        SELECT DISTINCT ON (framework, check_id) d, framework, check_id, variant_id, title, severity
        FROM _legacy_day ORDER BY framework, check_id, evaluated_at DESC
        ON CONFLICT (snapshot_date, framework, check_id) DO NOTHING;
        CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
        SELECT variant_id, account_id, max(control_logic) AS control_logic,
               max(substr(reason, length('Could not evaluate: ') + 1)) FILTER (WHERE is_load_error) AS error_reason
        FROM _legacy_day GROUP BY variant_id, account_id;
        CREATE TEMP TABLE _eval_verdicts ON COMMIT DROP AS
        SELECT variant_id, account_id, resource_id, resource_type, status, reason
        FROM _legacy_day l WHERE NOT is_load_error;
        PERFORM aws_policy_store_evaluation(d, NULL);
        UPDATE aws_policy_evaluations e
        SET run_id = l.run_id, evaluated_at = l.evaluated_at
        FROM (SELECT DISTINCT ON (variant_id, account_id) variant_id, account_id, run_id, evaluated_at
              FROM _legacy_day ORDER BY variant_id, account_id, evaluated_at DESC) l
        WHERE e.snapshot_date = d AND e.variant_id = l.variant_id AND e.account_id = l.account_id;
    END LOOP;
END
$$;
