-- After an upgrade from the earlier design (sql/schema/012_migrate_results.sql):
-- drop the old results table once the aws_policy_results view gives exactly its
-- rows (every column but run_id and evaluated_at, which come from the per-account
-- evaluation record) and no other object depends on it. Otherwise keep it and
-- say why (NOTICE); nothing is lost either way.
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
