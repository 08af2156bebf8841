-- Helpers shared by the checks. All are IMMUTABLE/STABLE SQL functions that the
-- planner can inline.

-- A JSON value that may be a scalar or an array, as an array (IAM policy
-- grammar allows both for Statement, Action, NotAction, Resource).
CREATE OR REPLACE FUNCTION iam_audit_as_array(value jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN value IS NULL OR jsonb_typeof(value) = 'null' THEN '[]'::jsonb
        WHEN jsonb_typeof(value) = 'array' THEN value
        ELSE jsonb_build_array(value)
    END
$$;

-- The statements of a policy document, one JSON object per row.
CREATE OR REPLACE FUNCTION iam_audit_statements(document jsonb)
RETURNS TABLE (statement_index integer, statement jsonb)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (ordinality - 1)::integer, value
    FROM jsonb_array_elements(iam_audit_as_array(document -> 'Statement')) WITH ORDINALITY
$$;

-- iam_audit_is_full_admin (does a statement grant administrator rights) lives in
-- 030_policy_functions.sql, next to the action matching it uses.

-- Accounts of a snapshot and, for each, whether every data set a check needs
-- was collected, understood and loaded; reason names the data sets that were not
-- (for a malformed one, the field at fault, as the loader recorded it), or why the
-- account's raw snapshot could not be loaded (iam_stage.accounts.load_error).
CREATE OR REPLACE FUNCTION iam_audit_account_readiness(p_snapshot_date date, p_datasets text[])
RETURNS TABLE (account_id text, as_of timestamptz, ready boolean, reason text)
LANGUAGE sql STABLE AS $$
    SELECT a.account_id,
           a.extracted_at,
           a.load_error IS NULL AND bool_and(s.status IS NOT DISTINCT FROM 'ok'),
           CASE WHEN a.load_error IS NOT NULL THEN 'the raw snapshot could not be loaded: ' || a.load_error
           ELSE string_agg(
               CASE WHEN s.status IS DISTINCT FROM 'ok' AND s.error_code = 'MalformedPayload' THEN
                   format('%s was collected but is malformed, so nothing in it is trusted (%s)', d.dataset,
                          coalesce(s.error_message, 'no detail recorded'))
                    WHEN s.status IS DISTINCT FROM 'ok' THEN
                   format('%s not collected (%s)', d.dataset,
                          coalesce(s.error_code || ': ' || s.error_message, s.error_code,
                                   s.error_message, 'no extraction record'))
               END, '; ' ORDER BY d.dataset)
           END
    FROM iam_stage.accounts a
    CROSS JOIN unnest(p_datasets) AS d(dataset)
    -- account data sets come from extraction_status; an organisation data set (organization_*, and
    -- account_tags: collected once per run, not per account) counts for every account of the date whose own
    -- snapshot was taken (at least one data set collected): an account that could not be read at
    -- all gets 'error' from every check, organisation-level ones included
    LEFT JOIN LATERAL (
        SELECT x.status, x.error_code, x.error_message
        FROM (
            SELECT 1 AS rank, e.status, e.error_code, e.error_message
            FROM iam_stage.extraction_status e
            WHERE e.snapshot_date = a.snapshot_date AND e.account_id = a.account_id AND e.dataset = d.dataset
            UNION ALL
            SELECT 2, o.status, o.error_code, o.error_message
            FROM iam_stage.organization_datasets o
            WHERE (d.dataset LIKE 'organization\_%' OR d.dataset = 'account_tags')
              AND o.snapshot_date = a.snapshot_date AND o.dataset = d.dataset
              AND EXISTS (SELECT 1 FROM iam_stage.extraction_status r
                          WHERE r.snapshot_date = a.snapshot_date AND r.account_id = a.account_id AND r.status = 'ok')
            UNION ALL
            SELECT 3, 'error', coalesce(f.error_code, 'NoSnapshot'),
                   'none of the account''s own data sets was collected' || coalesce(': ' || f.error_message, '')
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (  -- the account's own error, which says what to fix
                SELECT e.error_code, e.error_message FROM iam_stage.extraction_status e
                WHERE e.snapshot_date = a.snapshot_date AND e.account_id = a.account_id
                ORDER BY e.dataset LIMIT 1
            ) f ON true
            WHERE (d.dataset LIKE 'organization\_%' OR d.dataset = 'account_tags')
              AND EXISTS (SELECT 1 FROM iam_stage.organization_datasets o
                          WHERE o.snapshot_date = a.snapshot_date AND o.dataset = d.dataset)
        ) x
        ORDER BY x.rank
        LIMIT 1
    ) s ON true
    WHERE a.snapshot_date = p_snapshot_date
    GROUP BY a.account_id, a.extracted_at, a.load_error
$$;

-- The account ids of the organisation on a snapshot date: iam_stage.organization_accounts,
-- or, where that table has no rows for the date (Organizations not readable, an older
-- snapshot), the date's audited accounts. The trust checks judge "outside" against it.
CREATE OR REPLACE FUNCTION iam_audit_organization_account_ids(p_snapshot_date date)
RETURNS text[] LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce((SELECT array_agg(account_id) FROM iam_stage.organization_accounts
                     WHERE snapshot_date = p_snapshot_date),
                    (SELECT array_agg(account_id) FROM iam_stage.accounts
                     WHERE snapshot_date = p_snapshot_date))
$$;
