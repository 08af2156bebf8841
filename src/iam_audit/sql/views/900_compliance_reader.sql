-- compliance_reader: a NOLOGIN role for BI tools and analysts. Grant it to a
-- login role (GRANT compliance_reader TO bi_user). It can read the results, the
-- controls, the exceptions and every aws_policy_* view; it cannot write and
-- has nothing on iam_stage (raw IAM detail stays with the pipeline).
-- Runs last among sql/views so that every view exists. When the pipeline's
-- database user may not create roles, the role is left to a DBA and this step
-- only says so (NOTICE): the pipeline must not fail for it.
DO $$
DECLARE
    obj record;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'compliance_reader') THEN
        BEGIN
            CREATE ROLE compliance_reader NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN
                NULL;  -- created meanwhile by a schema apply in another database of the cluster
            WHEN insufficient_privilege THEN
                RAISE NOTICE 'role compliance_reader does not exist and % may not create it: '
                             'ask a DBA to CREATE ROLE compliance_reader NOLOGIN', current_user;
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO compliance_reader', current_schema());
    GRANT SELECT ON aws_policy_results, aws_policy_controls, aws_policy_exceptions TO compliance_reader;
    FOR obj IN
        SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace
          AND c.relkind IN ('v', 'm') AND c.relname LIKE 'aws\_policy\_%'
        ORDER BY c.relname
    LOOP
        EXECUTE format('GRANT SELECT ON %I TO compliance_reader', obj.relname);
    END LOOP;
END
$$;
