-- Runs after the functions and views (a .post migration): brings data of earlier
-- layouts into the verdict history through its own write path.
--
-- 1. failing_since where it is missing: a database whose verdicts were written before
--    the column existed.
SELECT aws_policy_refresh_streaks(array_agg(variant_id), array_agg(account_id), 'infinity')
FROM aws_policy_pairs
WHERE EXISTS (SELECT 1 FROM aws_policy_verdicts WHERE status = 'fail' AND failing_since IS NULL);

-- 2. The earlier design's results table (set aside by 0002 as aws_policy_results_legacy):
--    every date is written into the history in date order through
--    aws_policy_store_evaluation, one variant per framework control (so no verdict can be
--    merged with another framework's), keeping each account's run_id and evaluated_at.
DO $$
DECLARE
    d date;
BEGIN
    IF to_regclass('aws_policy_results_legacy') IS NULL
       OR obj_description(to_regclass('aws_policy_results_legacy'), 'pg_class')
          IS DISTINCT FROM 'aws_iam_cis: to be written into the verdict history' THEN
        RETURN;
    END IF;
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
    COMMENT ON TABLE aws_policy_results_legacy IS NULL;
END
$$;

-- 3. Drop the old results table once the aws_policy_results view gives exactly its rows
--    (every column but run_id and evaluated_at, which come from the per-account
--    evaluation record) and no other object depends on it. Otherwise keep it and say why
--    (NOTICE); nothing is lost either way.
DO $$
DECLARE
    missing bigint;
    extra bigint;
    dependents text;
BEGIN
    IF to_regclass('aws_policy_results_legacy') IS NULL THEN
        RETURN;
    END IF;
    SELECT count(*) INTO missing FROM (
        SELECT snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type,
               status, reason, control_logic FROM aws_policy_results_legacy
        EXCEPT ALL
        SELECT snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type,
               status, reason, control_logic FROM aws_policy_results) m;
    SELECT count(*) INTO extra FROM (
        SELECT snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type,
               status, reason, control_logic FROM aws_policy_results
        EXCEPT ALL
        SELECT snapshot_date, framework, check_id, title, severity, account_id, resource_id, resource_type,
               status, reason, control_logic FROM aws_policy_results_legacy) m;
    SELECT string_agg(DISTINCT dc.relname, ', ') INTO dependents
    FROM pg_depend dep
    JOIN pg_rewrite rw ON rw.oid = dep.objid
    JOIN pg_class dc ON dc.oid = rw.ev_class
    WHERE dep.refobjid = 'aws_policy_results_legacy'::regclass AND dc.oid <> 'aws_policy_results_legacy'::regclass;
    IF missing = 0 AND extra = 0 AND dependents IS NULL THEN
        DROP TABLE aws_policy_results_legacy;
    ELSE
        RAISE NOTICE 'kept aws_policy_results_legacy: % rows missing from and % extra in the history view; '
                     'objects reading it: %', missing, extra, coalesce(dependents, 'none');
    END IF;
END
$$;
