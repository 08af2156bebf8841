-- The fingerprint (SHA-256) of sql/schema, sql/views and the catalogue last applied
-- by prepare_database: an unchanged fingerprint means no DDL at all, so a run never
-- waits behind (or makes readers wait behind) a lock it does not need.
CREATE TABLE IF NOT EXISTS iam_audit_schema_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    fingerprint text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- Concurrent runs of one snapshot date (scheduler, make run, backfills) must not
-- interleave writes. The key of a date's advisory lock: the load holds it exclusively
-- (database.snapshot_date_lock), each check holds it shared plus its own
-- (date, logic) key exclusively, for its transaction.
CREATE OR REPLACE FUNCTION iam_audit_date_lock_key(p_snapshot_date date, p_logic text DEFAULT NULL)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT hashtextextended('aws_iam_cis snapshot ' || p_snapshot_date::text
                            || coalesce(' check ' || p_logic, ''), 0)
$$;

-- Called first in every check's transaction (sql/macros/check.sql): waits at most
-- iam_audit.date_lock_timeout (default 10min) for a load or the same check of another
-- run of the date, then fails naming the session in the way.
CREATE OR REPLACE FUNCTION iam_audit_lock_for_check(p_snapshot_date date, p_logic text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_previous text := current_setting('lock_timeout');
    v_wait text := coalesce(nullif(current_setting('iam_audit.date_lock_timeout', true), ''), '10min');
    v_holders text;
BEGIN
    PERFORM set_config('lock_timeout', v_wait, true);
    BEGIN
        PERFORM pg_advisory_xact_lock_shared(iam_audit_date_lock_key(p_snapshot_date));
        PERFORM pg_advisory_xact_lock(iam_audit_date_lock_key(p_snapshot_date, p_logic));
    EXCEPTION WHEN lock_not_available THEN
        SELECT string_agg(DISTINCT 'pid ' || a.pid || ' (' || coalesce(a.application_name, '') || ', '
                          || coalesce(a.state, '?') || ')', '; ')
          INTO v_holders
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND a.pid <> pg_backend_pid()
          AND ((l.classid::bigint << 32) | l.objid::bigint) IN (
              iam_audit_date_lock_key(p_snapshot_date), iam_audit_date_lock_key(p_snapshot_date, p_logic));
        RAISE EXCEPTION 'check % of snapshot %: another run is writing this date and did not finish within %',
                        p_logic, p_snapshot_date, v_wait
              USING ERRCODE = 'lock_not_available',
                    DETAIL = 'held by ' || coalesce(v_holders, 'a session that has finished since'),
                    HINT = 'Runs of one date never write at the same time; re-run this task once the other run is done.';
    END;
    PERFORM set_config('lock_timeout', v_previous, true);
END
$$;
