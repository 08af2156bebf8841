-- The functions of the verdict history (tables: sql/migrations/0001_baseline.sql).

-- Recompute the aws_policy_pairs rows of the given pairs from their evaluations
-- (three index probes each); a pair without evaluations any more goes.
CREATE OR REPLACE FUNCTION aws_policy_refresh_pairs(p_variants integer[], p_accounts text[])
RETURNS void LANGUAGE sql AS $$
    DELETE FROM aws_policy_pairs p
    USING unnest(p_variants, p_accounts) AS k (variant_id, account_id)
    WHERE p.variant_id = k.variant_id AND p.account_id = k.account_id
      AND NOT EXISTS (SELECT 1 FROM aws_policy_evaluations e
                      WHERE e.variant_id = k.variant_id AND e.account_id = k.account_id);
    INSERT INTO aws_policy_pairs AS p (variant_id, account_id, latest_date, latest_evaluated_date,
                                       latest_complete_date)
    SELECT k.variant_id, k.account_id,
           (SELECT max(e.snapshot_date) FROM aws_policy_evaluations e
            WHERE e.variant_id = k.variant_id AND e.account_id = k.account_id
              AND e.pass_count + e.fail_count + e.error_count > 0),
           (SELECT max(e.snapshot_date) FROM aws_policy_evaluations e
            WHERE e.variant_id = k.variant_id AND e.account_id = k.account_id
              AND e.evaluated AND e.pass_count + e.fail_count + e.error_count > 0),
           (SELECT max(e.snapshot_date) FROM aws_policy_evaluations e
            WHERE e.variant_id = k.variant_id AND e.account_id = k.account_id AND e.error_reason IS NULL)
    FROM (SELECT DISTINCT variant_id, account_id FROM unnest(p_variants, p_accounts) AS u (variant_id, account_id)) k
    WHERE EXISTS (SELECT 1 FROM aws_policy_evaluations e
                  WHERE e.variant_id = k.variant_id AND e.account_id = k.account_id)
    ON CONFLICT (variant_id, account_id) DO UPDATE
       SET latest_date = EXCLUDED.latest_date, latest_evaluated_date = EXCLUDED.latest_evaluated_date,
           latest_complete_date = EXCLUDED.latest_complete_date;
$$;

-- failing_since of the 'fail' intervals of the given pairs that start on or after
-- p_from (or have none yet), from the evaluations and the intervals before them:
-- an interval continues the streak of the resource's failing interval covering
-- the evaluated date just before it (dates where the account could not be
-- evaluated are skipped), else it starts one. Intervals before p_from keep theirs.
CREATE OR REPLACE FUNCTION aws_policy_refresh_streaks(p_variants integer[], p_accounts text[], p_from date)
RETURNS void LANGUAGE sql AS $$
    WITH k AS (
        SELECT DISTINCT variant_id, account_id FROM unnest(p_variants, p_accounts) AS u (variant_id, account_id)
    ),
    t AS (
        SELECT i.variant_id, i.account_id, i.resource_id, i.valid_from, i.failing_since
        FROM k JOIN aws_policy_verdicts i
          ON i.variant_id = k.variant_id AND i.account_id = k.account_id AND i.status = 'fail'
         AND i.valid_from >= p_from
        UNION
        SELECT i.variant_id, i.account_id, i.resource_id, i.valid_from, i.failing_since
        FROM k JOIN aws_policy_verdicts i
          ON i.variant_id = k.variant_id AND i.account_id = k.account_id AND i.status = 'fail'
         AND i.failing_since IS NULL
    ),
    c AS (
        -- the streak start known without looking at other targets (NULL: inherit the previous target's)
        SELECT t.variant_id, t.account_id, t.resource_id, t.valid_from, t.failing_since,
               CASE WHEN pf.valid_from IS NULL THEN t.valid_from
                    WHEN pf.valid_from >= p_from OR pf.failing_since IS NULL THEN NULL
                    ELSE pf.failing_since END AS start
        FROM t
        LEFT JOIN LATERAL (
            SELECT p.snapshot_date FROM aws_policy_evaluations p
            WHERE p.variant_id = t.variant_id AND p.account_id = t.account_id AND p.snapshot_date < t.valid_from
              AND p.evaluated AND p.pass_count + p.fail_count + p.error_count > 0
            ORDER BY p.snapshot_date DESC LIMIT 1
        ) pd ON true
        LEFT JOIN LATERAL (
            SELECT f.valid_from, f.failing_since
            FROM (SELECT f.valid_from, f.valid_to, f.status, f.failing_since FROM aws_policy_verdicts f
                  WHERE f.variant_id = t.variant_id AND f.account_id = t.account_id AND f.resource_id = t.resource_id
                    AND f.valid_from <= pd.snapshot_date
                  ORDER BY f.valid_from DESC LIMIT 1) f
            WHERE f.status = 'fail' AND f.valid_to >= pd.snapshot_date
        ) pf ON true
    ),
    g AS (
        SELECT c.*, count(start) OVER (PARTITION BY variant_id, account_id, resource_id ORDER BY valid_from) AS grp
        FROM c
    ),
    s AS (
        SELECT g.*, max(start) OVER (PARTITION BY variant_id, account_id, resource_id, grp) AS streak FROM g
    )
    UPDATE aws_policy_verdicts v SET failing_since = s.streak
    FROM s
    WHERE v.variant_id = s.variant_id AND v.account_id = s.account_id AND v.resource_id = s.resource_id
      AND v.valid_from = s.valid_from AND s.failing_since IS DISTINCT FROM s.streak;
$$;

-- The one write path. Callers fill two temporary tables in the same transaction:
--   _eval_pairs (variant_id, account_id, control_logic, error_reason)  every (variant, account)
--               evaluated on p_date; error_reason NOT NULL when its data was incomplete
--   _eval_verdicts (variant_id, account_id, resource_id, resource_type, status, reason)
--               the verdicts of the pairs with complete data
-- It records the evaluations and rewrites only the intervals that change: for a
-- new newest date with 1 % churn, about 1 % of the intervals.
CREATE OR REPLACE FUNCTION aws_policy_store_evaluation(p_date date, p_run_id text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp._eval_ctx, pg_temp._eval_window, pg_temp._eval_changed, pg_temp._eval_pieces;
    -- the temporary tables below are analysed for their joins; a small sample is enough
    SET LOCAL default_statistics_target = 10;
    -- neighbouring complete evaluations of each pair, other than p_date
    CREATE TEMP TABLE _eval_ctx ON COMMIT DROP AS
    SELECT p.variant_id, p.account_id, p.control_logic, p.error_reason, p.error_reason IS NULL AS ok,
           (SELECT max(e.snapshot_date) FROM aws_policy_evaluations e
            WHERE e.variant_id = p.variant_id AND e.account_id = p.account_id
              AND e.snapshot_date < p_date AND e.error_reason IS NULL) AS prev_date,
           (SELECT min(e.snapshot_date) FROM aws_policy_evaluations e
            WHERE e.variant_id = p.variant_id AND e.account_id = p.account_id
              AND e.snapshot_date > p_date AND e.error_reason IS NULL) AS next_date
    FROM _eval_pairs p;
    ANALYZE _eval_ctx;

    INSERT INTO aws_policy_evaluations AS e (snapshot_date, variant_id, account_id, control_logic, run_id,
        evaluated_at, error_reason, evaluated, pass_count, fail_count, error_count)
    SELECT p_date, c.variant_id, c.account_id, c.control_logic, p_run_id, now(), c.error_reason,
           c.ok AND coalesce(n.account_error, 0) = 0,
           coalesce(n.pass_count, 0), coalesce(n.fail_count, 0),
           CASE WHEN c.ok THEN coalesce(n.error_count, 0) ELSE 1 END
    FROM _eval_ctx c
    LEFT JOIN (
        SELECT v.variant_id, v.account_id,
               count(*) FILTER (WHERE v.status = 'pass') AS pass_count,
               count(*) FILTER (WHERE v.status = 'fail') AS fail_count,
               count(*) FILTER (WHERE v.status = 'error') AS error_count,
               count(*) FILTER (WHERE v.status = 'error' AND v.resource_id = v.account_id) AS account_error
        FROM _eval_verdicts v GROUP BY v.variant_id, v.account_id
    ) n ON n.variant_id = c.variant_id AND n.account_id = c.account_id
    ON CONFLICT (snapshot_date, variant_id, account_id) DO UPDATE
       SET control_logic = EXCLUDED.control_logic, run_id = EXCLUDED.run_id,
           evaluated_at = EXCLUDED.evaluated_at, error_reason = EXCLUDED.error_reason,
           evaluated = EXCLUDED.evaluated, pass_count = EXCLUDED.pass_count,
           fail_count = EXCLUDED.fail_count, error_count = EXCLUDED.error_count;
    PERFORM aws_policy_refresh_pairs(array_agg(variant_id), array_agg(account_id)) FROM _eval_ctx;

    -- Resources whose verdict of p_date is the one of an interval already covering
    -- p_date, and that have no other interval between the previous and the next
    -- complete evaluation, keep all their intervals as they are (most resources on
    -- most days): only the others are rebuilt below. One pass over the pairs'
    -- intervals in that range, hash-anti-joined with this date's verdicts both
    -- ways, finds them without copying and analysing the range as a temporary table.
    CREATE TEMP TABLE _eval_changed ON COMMIT DROP AS
    WITH w AS MATERIALIZED (
        SELECT i.variant_id, i.account_id, i.resource_id, i.resource_type, i.status, i.reason,
               i.valid_from <= p_date AND i.valid_to >= p_date AS covers
        FROM _eval_ctx c
        JOIN aws_policy_verdicts i
          ON i.variant_id = c.variant_id AND i.account_id = c.account_id
         AND i.valid_to >= coalesce(c.prev_date, p_date) AND i.valid_from <= coalesce(c.next_date, 'infinity')
    )
    SELECT w.variant_id, w.account_id, w.resource_id
    FROM w
    LEFT JOIN _eval_verdicts d
      ON w.covers AND d.variant_id = w.variant_id AND d.account_id = w.account_id AND d.resource_id = w.resource_id
     AND d.status = w.status AND d.reason = w.reason AND d.resource_type IS NOT DISTINCT FROM w.resource_type
    WHERE d.variant_id IS NULL
    UNION
    SELECT d.variant_id, d.account_id, d.resource_id
    FROM _eval_verdicts d
    LEFT JOIN w
      ON w.covers AND d.variant_id = w.variant_id AND d.account_id = w.account_id AND d.resource_id = w.resource_id
     AND d.status = w.status AND d.reason = w.reason AND d.resource_type IS NOT DISTINCT FROM w.resource_type
    WHERE w.variant_id IS NULL;
    ANALYZE _eval_changed;

    -- the intervals of those resources that cover the previous, this or the next complete evaluation
    CREATE TEMP TABLE _eval_window ON COMMIT DROP AS
    SELECT i.*, c.prev_date, c.next_date
    FROM _eval_changed r
    JOIN _eval_ctx c ON c.variant_id = r.variant_id AND c.account_id = r.account_id
    JOIN aws_policy_verdicts i
      ON i.variant_id = r.variant_id AND i.account_id = r.account_id AND i.resource_id = r.resource_id
     AND i.valid_to >= coalesce(c.prev_date, p_date) AND i.valid_from <= coalesce(c.next_date, 'infinity');
    ANALYZE _eval_window;

    -- The new intervals of every resource in the window: the run covering the
    -- previous date, the verdict of p_date (when its data is complete) and the run
    -- covering the next date, merged where neighbours hold the same verdict.
    CREATE TEMP TABLE _eval_pieces ON COMMIT DROP AS
    WITH res AS (
        SELECT variant_id, account_id, resource_id FROM _eval_changed
    ),
    x AS (
        SELECT r.variant_id, r.account_id, r.resource_id, c.ok, c.prev_date, c.next_date,
               wp.valid_from AS p_from, wp.resource_type AS p_type, wp.status AS p_status, wp.reason AS p_reason,
               wp.failing_since AS p_since,
               wn.valid_to AS n_to, wn.resource_type AS n_type, wn.status AS n_status, wn.reason AS n_reason,
               d.resource_type AS d_type, d.status AS d_status, d.reason AS d_reason
        FROM res r
        JOIN _eval_ctx c ON c.variant_id = r.variant_id AND c.account_id = r.account_id
        LEFT JOIN _eval_window wp
          ON wp.variant_id = r.variant_id AND wp.account_id = r.account_id AND wp.resource_id = r.resource_id
         AND wp.valid_from <= c.prev_date AND wp.valid_to >= c.prev_date
        LEFT JOIN _eval_window wn
          ON wn.variant_id = r.variant_id AND wn.account_id = r.account_id AND wn.resource_id = r.resource_id
         AND wn.valid_from <= c.next_date AND wn.valid_to >= c.next_date
        LEFT JOIN _eval_verdicts d
          ON c.ok AND d.variant_id = r.variant_id AND d.account_id = r.account_id AND d.resource_id = r.resource_id
    ),
    y AS (
        SELECT x.*,
               x.d_status IS NOT NULL AND x.p_status IS NOT NULL AND x.p_status = x.d_status
                   AND x.p_reason = x.d_reason AND x.p_type IS NOT DISTINCT FROM x.d_type AS same_pd,
               x.d_status IS NOT NULL AND x.n_status IS NOT NULL AND x.n_status = x.d_status
                   AND x.n_reason = x.d_reason AND x.n_type IS NOT DISTINCT FROM x.d_type AS same_dn,
               NOT x.ok AND x.p_status IS NOT NULL AND x.n_status IS NOT NULL AND x.p_status = x.n_status
                   AND x.p_reason = x.n_reason AND x.p_type IS NOT DISTINCT FROM x.n_type AS same_pn
        FROM x
    ),
    pieces AS (
        SELECT y.variant_id, y.account_id, y.resource_id, piece.*, y.ok, y.prev_date, y.next_date
        FROM y
        CROSS JOIN LATERAL (VALUES
            -- the run through the previous date
            (y.p_status IS NOT NULL, y.p_from,
             CASE WHEN y.same_pd AND y.same_dn THEN y.n_to
                  WHEN y.same_pd THEN p_date
                  WHEN y.same_pn THEN y.n_to
                  ELSE y.prev_date END,
             y.p_type, y.p_status, y.p_reason, y.p_since),
            -- this date's verdict, when it does not continue the previous run
            (y.d_status IS NOT NULL AND NOT y.same_pd, p_date,
             CASE WHEN y.same_dn THEN y.n_to ELSE p_date END,
             y.d_type, y.d_status, y.d_reason, NULL::date),
            -- the run through the next date, when nothing before joins it
            (y.n_status IS NOT NULL AND NOT y.same_dn AND NOT y.same_pn, y.next_date, y.n_to,
             y.n_type, y.n_status, y.n_reason, NULL::date)
        ) AS piece (keep, valid_from, valid_to, resource_type, status, reason, failing_since)
        WHERE piece.keep
    )
    SELECT variant_id, account_id, resource_id, valid_from,
           -- a run reaching the pair's newest complete evaluation stays open
           CASE WHEN next_date IS NULL AND valid_to = CASE WHEN ok THEN p_date ELSE prev_date END
                THEN 'infinity'::date ELSE valid_to END AS valid_to,
           resource_type, status, reason, failing_since
    FROM pieces;
    ANALYZE _eval_pieces;

    DELETE FROM aws_policy_verdicts v
    USING _eval_window w
    JOIN _eval_changed r ON r.variant_id = w.variant_id AND r.account_id = w.account_id AND r.resource_id = w.resource_id
    WHERE v.variant_id = w.variant_id AND v.account_id = w.account_id AND v.resource_id = w.resource_id
      AND v.valid_from = w.valid_from
      AND NOT EXISTS (
          SELECT 1 FROM _eval_pieces n
          WHERE n.variant_id = w.variant_id AND n.account_id = w.account_id AND n.resource_id = w.resource_id
            AND n.valid_from = w.valid_from AND n.valid_to = w.valid_to
            AND n.status = w.status AND n.reason = w.reason
            AND n.resource_type IS NOT DISTINCT FROM w.resource_type);

    INSERT INTO aws_policy_verdicts (variant_id, account_id, resource_id, valid_from, valid_to,
                                     resource_type, status, reason, failing_since)
    SELECT n.variant_id, n.account_id, n.resource_id, n.valid_from, n.valid_to, n.resource_type, n.status, n.reason,
           n.failing_since
    FROM _eval_pieces n
    WHERE NOT EXISTS (
        SELECT 1 FROM _eval_window w
        WHERE n.variant_id = w.variant_id AND n.account_id = w.account_id AND n.resource_id = w.resource_id
          AND n.valid_from = w.valid_from AND n.valid_to = w.valid_to
          AND n.status = w.status AND n.reason = w.reason
          AND n.resource_type IS NOT DISTINCT FROM w.resource_type);

    -- p_date's verdicts and whether it counts as evaluated changed: the streaks of
    -- the intervals from p_date on (all of them for a replay in the middle)
    PERFORM aws_policy_refresh_streaks(array_agg(variant_id), array_agg(account_id), p_date) FROM _eval_ctx;
END
$$;

-- Check path, step 1 (sql/macros/check.sql, after iam_audit_lock_for_check):
-- register the variants and the date's scopes of the requested frameworks, and
-- leave _check_controls (one row per requested control, `representative` on one
-- control per variant: the rows the check body evaluates) and an empty
-- _check_body for the body's verdicts.
CREATE OR REPLACE FUNCTION aws_policy_begin_check(p_date date, p_logic text, p_frameworks text[])
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- the caller holds iam_audit_lock_for_check (sql/macros/check.sql): one writer per logic and date
    INSERT INTO aws_policy_variants (control_logic, params)
    SELECT DISTINCT c.logic, c.params FROM aws_policy_controls c
    WHERE c.logic = p_logic AND c.framework = ANY(p_frameworks)
    ON CONFLICT (control_logic, params) DO NOTHING;

    DROP TABLE IF EXISTS pg_temp._check_controls, pg_temp._check_body;
    CREATE TEMP TABLE _check_controls ON COMMIT DROP AS
    SELECT c.framework, c.check_id, c.title, c.severity, c.params, v.variant_id,
           row_number() OVER (PARTITION BY v.variant_id ORDER BY c.framework, c.check_id) = 1 AS representative
    FROM aws_policy_controls c
    JOIN aws_policy_variants v ON v.control_logic = c.logic AND v.params = c.params
    WHERE c.logic = p_logic AND c.framework = ANY(p_frameworks);

    INSERT INTO aws_policy_scopes AS s (snapshot_date, framework, check_id, variant_id, title, severity)
    SELECT p_date, framework, check_id, variant_id, title, severity FROM _check_controls
    ON CONFLICT (snapshot_date, framework, check_id) DO UPDATE
       SET variant_id = EXCLUDED.variant_id, title = EXCLUDED.title, severity = EXCLUDED.severity;

    CREATE TEMP TABLE _check_body (
        framework text, check_id text, account_id text, resource_id text, resource_type text,
        status text, reason text
    ) ON COMMIT DROP;
END
$$;

-- Check path, step 2: the accounts of the snapshot (iam_stage.accounts) with their
-- readiness for the logic's data sets, the body's verdicts per variant, stored.
CREATE OR REPLACE FUNCTION aws_policy_finish_check(p_date date, p_logic text, p_needs text[], p_run_id text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    DROP TABLE IF EXISTS pg_temp._eval_pairs, pg_temp._eval_verdicts;
    SET LOCAL default_statistics_target = 10;
    CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
    SELECT v.variant_id, r.account_id, p_logic AS control_logic,
           CASE WHEN NOT r.ready THEN coalesce(r.reason, 'data not collected') END AS error_reason
    FROM (SELECT DISTINCT variant_id FROM _check_controls) v
    CROSS JOIN iam_audit_account_readiness(p_date, p_needs) r;

    CREATE TEMP TABLE _eval_verdicts ON COMMIT DROP AS
    SELECT c.variant_id, b.account_id, b.resource_id, b.resource_type, b.status, b.reason
    FROM _check_body b
    JOIN _check_controls c ON c.framework = b.framework AND c.check_id = b.check_id AND c.representative
    JOIN _eval_pairs p ON p.variant_id = c.variant_id AND p.account_id = b.account_id AND p.error_reason IS NULL;
    ANALYZE _eval_pairs;
    ANALYZE _eval_verdicts;
    PERFORM aws_policy_store_evaluation(p_date, p_run_id);
END
$$;

-- Remove the evaluation of one (snapshot_date, variant, account), as if that date
-- had never been evaluated for it: the intervals around it are re-joined.
CREATE OR REPLACE FUNCTION aws_policy_forget_evaluation(p_date date, p_variant integer, p_account text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM aws_policy_evaluations
                   WHERE snapshot_date = p_date AND variant_id = p_variant AND account_id = p_account) THEN
        RETURN;
    END IF;
    DROP TABLE IF EXISTS pg_temp._eval_pairs, pg_temp._eval_verdicts;
    CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
    SELECT p_variant AS variant_id, p_account AS account_id, NULL::text AS control_logic,
           'removed'::text AS error_reason;
    CREATE TEMP TABLE _eval_verdicts (variant_id integer, account_id text, resource_id text, resource_type text,
                                      status text, reason text) ON COMMIT DROP;
    PERFORM aws_policy_store_evaluation(p_date, NULL);
    DELETE FROM aws_policy_evaluations
    WHERE snapshot_date = p_date AND variant_id = p_variant AND account_id = p_account;
    PERFORM aws_policy_refresh_pairs(ARRAY[p_variant], ARRAY[p_account]);
END
$$;

-- Retention (Variable iam_audit_retention_days): forget every snapshot date before
-- p_before. Evaluations and scopes go one date at a time, intervals that ended
-- before p_before in batches of p_batch rows through their valid_to index, each
-- batch in its own transaction when CALLed outside a transaction block: no
-- full-table DELETE, no lock beyond the rows of a batch. Intervals still running
-- at p_before are kept whole (their valid_from may precede it; no date before
-- p_before has an evaluation any more, so aws_policy_results shows none).
CREATE OR REPLACE PROCEDURE aws_policy_expire_history(p_before date, p_batch integer DEFAULT 20000)
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    n bigint;
BEGIN
    FOR d IN SELECT DISTINCT snapshot_date FROM aws_policy_scopes WHERE snapshot_date < p_before ORDER BY 1 LOOP
        DELETE FROM aws_policy_evaluations WHERE snapshot_date = d;
        DELETE FROM aws_policy_scopes WHERE snapshot_date = d;
        COMMIT;
    END LOOP;
    -- pairs whose newest dates were expired (no evaluation before p_before is left)
    PERFORM aws_policy_refresh_pairs(array_agg(variant_id), array_agg(account_id))
    FROM aws_policy_pairs
    WHERE latest_date < p_before OR latest_evaluated_date < p_before OR latest_complete_date < p_before;
    COMMIT;
    LOOP
        DELETE FROM aws_policy_verdicts
        WHERE ctid = ANY(ARRAY(SELECT ctid FROM aws_policy_verdicts
                               WHERE valid_to < p_before AND valid_to <> 'infinity' LIMIT p_batch));
        GET DIAGNOSTICS n = ROW_COUNT;
        COMMIT;
        EXIT WHEN n < p_batch;
    END LOOP;
    -- A streak whose first intervals were expired now starts at its first kept
    -- interval (nothing before it is evaluated any more): the streak of one
    -- resource is identified by its failing_since.
    UPDATE aws_policy_verdicts v SET failing_since = m.first_kept
    FROM (SELECT variant_id, account_id, resource_id, failing_since, min(valid_from) AS first_kept
          FROM aws_policy_verdicts
          WHERE status = 'fail' AND failing_since < p_before
          GROUP BY variant_id, account_id, resource_id, failing_since) m
    WHERE v.status = 'fail' AND v.variant_id = m.variant_id AND v.account_id = m.account_id
      AND v.resource_id = m.resource_id AND v.failing_since = m.failing_since
      AND v.failing_since <> m.first_kept;
    COMMIT;
END
$$;
