-- One statement for the accounts: the org-wide totals over ALL accounts (each account's newest
-- evaluated snapshot, as "scores"), the account counts, and one ranked page of accounts. The
-- per-account x framework sums are computed once and shared (MATERIALIZED); {framework_filter},
-- {accounts_filter} and {order} are fixed fragments (ACCOUNT_FILTERS, ACCOUNT_SORTS), never text from the request.
WITH fresh AS MATERIALIZED (
    SELECT account_id, account_name, latest_snapshot_date, latest_run_date, extracted_at,
           snapshot_age_days, is_stale
    FROM aws_policy_account_freshness
),
-- grouped per date before the join with each account's newest date: the estimates stay right (the
-- dates are a parameter) and the grouping hashes; in the C collation (a byte-wise compare) the
-- accounts x controls rows group many times faster than in the database's language collation
per AS MATERIALIZED (
    SELECT s.account_id, s.framework, s.pass, s.fail, s.error, s.muted
    FROM (
        SELECT account_id COLLATE "C" AS account_id, snapshot_date, framework COLLATE "C" AS framework,
               sum(pass_count) AS pass, sum(fail_count) AS fail,
               sum(error_count) AS error, sum(muted_count) AS muted
        FROM aws_policy_scores
        WHERE snapshot_date = ANY(%(dates)s::date[])
        GROUP BY 1, 2, 3
    ) s
    JOIN fresh f ON f.account_id = s.account_id AND f.latest_snapshot_date = s.snapshot_date
),
worst AS (
    SELECT account_id, min(pass / nullif(pass + fail, 0)) AS rate, max(fail) AS fails
    FROM per WHERE true {framework_filter}
    GROUP BY account_id
),
ranked AS (
    SELECT f.*, row_number() OVER (ORDER BY {order}) AS n
    FROM fresh f LEFT JOIN worst w ON w.account_id = f.account_id
    WHERE true {accounts_filter}
    ORDER BY n
    LIMIT %(limit)s OFFSET %(offset)s
)
SELECT (SELECT count(*) FROM fresh),
       (SELECT count(*) FROM fresh WHERE is_stale),
       (SELECT count(*) FROM fresh WHERE latest_snapshot_date IS NULL),
       (SELECT max(latest_run_date) FROM fresh),
       (SELECT count(*) FROM fresh f WHERE true {accounts_filter}),
       (SELECT json_agg(json_build_array(account_id, account_name, latest_snapshot_date)
                        ORDER BY latest_snapshot_date NULLS FIRST, account_id)
        FROM (SELECT * FROM fresh WHERE is_stale
              ORDER BY latest_snapshot_date NULLS FIRST, account_id LIMIT %(stale_named)s) s),
       (SELECT json_agg(json_build_array(framework, pass, fail, error, muted, accounts) ORDER BY framework)
        FROM (SELECT framework, sum(pass) AS pass, sum(fail) AS fail, sum(error) AS error,
                     sum(muted) AS muted, count(*) AS accounts
              FROM per GROUP BY framework) t),
       (SELECT json_agg(json_build_array(account_id, account_name, latest_snapshot_date, latest_run_date,
                                         extracted_at, snapshot_age_days, is_stale) ORDER BY n)
        FROM ranked),
       (SELECT json_agg(json_build_array(p.account_id, p.framework, r.latest_snapshot_date,
                                         p.pass, p.fail, p.error, p.muted) ORDER BY r.n, p.framework)
        FROM ranked r JOIN per p ON p.account_id = r.account_id)
