-- may the page's login change anything? a superuser, or a role with a write privilege on a table of
-- the compliance schema or iam_stage (the page is read-only; its login should be compliance_reader's)
SELECT r.rolsuper OR EXISTS (
    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname IN (current_schema(), 'iam_stage') AND c.relkind IN ('r', 'p')
      AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), current_user
FROM pg_roles r WHERE r.rolname = current_user
