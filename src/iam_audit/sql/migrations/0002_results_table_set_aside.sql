-- A database of the earlier design, where aws_policy_results was a table with one row
-- per snapshot_date x framework x control x resource: the table is renamed
-- aws_policy_results_legacy before the views are created, so that the name is free for
-- the view over the verdict history (sql/views/005_aws_policy_results.sql). Its rows
-- are written into the history by 0003, which runs once the functions and views exist.
-- Elsewhere a no-op.
DO $$
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = to_regclass('aws_policy_results')) = 'r' THEN
        ALTER TABLE aws_policy_results RENAME TO aws_policy_results_legacy;
        -- what 0003 converts: not a table an earlier release already set aside (and kept)
        COMMENT ON TABLE aws_policy_results_legacy IS 'aws_iam_cis: to be written into the verdict history';
    END IF;
END
$$;
