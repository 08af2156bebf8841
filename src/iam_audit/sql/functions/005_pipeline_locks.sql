-- The lock row of a date, and of a (date, logic) pair.
CREATE OR REPLACE FUNCTION iam_audit_lock_name(p_snapshot_date date, p_logic text DEFAULT NULL)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_logic IS NULL
                THEN 'date ' || abs(hashtextextended('aws_iam_cis ' || p_snapshot_date::text, 0) % 256)
                ELSE 'check ' || abs(hashtextextended('aws_iam_cis ' || p_snapshot_date::text || ' ' || p_logic, 0)
                                     % 1024)
           END
$$;

-- Take the named lock for the caller's transaction.
CREATE OR REPLACE FUNCTION iam_audit_take_lock(p_name text, p_shared boolean DEFAULT false)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF p_shared THEN
        PERFORM 1 FROM iam_audit_locks WHERE lock_name = p_name FOR SHARE;
    ELSE
        PERFORM 1 FROM iam_audit_locks WHERE lock_name = p_name FOR UPDATE;
    END IF;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'iam_audit_locks has no row %', p_name USING HINT = 'Re-apply the schema (prepare_database).';
    END IF;
END
$$;

-- Sessions that may hold the pipeline's locks (their role may update iam_audit_locks) and are in a
-- transaction: who a lock's waiter names when it gives up (row locks are not listed in pg_locks).
CREATE OR REPLACE FUNCTION iam_audit_lock_holders() RETURNS text LANGUAGE sql STABLE AS $$
    SELECT coalesce(string_agg(format('pid %s (%s, user %s, application %s, %s, in a transaction for %s)',
                                      a.pid, coalesce(a.client_addr::text, 'local'), a.usename,
                                      coalesce(nullif(a.application_name, ''), '?'), a.state,
                                      date_trunc('second', now() - a.xact_start)), '; ' ORDER BY a.pid),
                    'a session that has finished since')
    FROM pg_stat_activity a
    WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL
      AND a.usesysid IS NOT NULL
      AND has_table_privilege(a.usesysid, 'iam_audit_locks', 'UPDATE')
$$;

-- Called first in every check's transaction (sql/macros/check.sql): waits at most
-- iam_audit.date_lock_timeout (default 10min) for a load or the same check of another
-- run of the date, then fails naming the sessions that may be in the way.
CREATE OR REPLACE FUNCTION iam_audit_lock_for_check(p_snapshot_date date, p_logic text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_previous text := current_setting('lock_timeout');
    v_wait text := coalesce(nullif(current_setting('iam_audit.date_lock_timeout', true), ''), '10min');
BEGIN
    PERFORM set_config('lock_timeout', v_wait, true);
    BEGIN
        PERFORM iam_audit_take_lock(iam_audit_lock_name(p_snapshot_date), true);
        PERFORM iam_audit_take_lock(iam_audit_lock_name(p_snapshot_date, p_logic));
    EXCEPTION WHEN lock_not_available THEN
        RAISE EXCEPTION 'check % of snapshot %: another run is writing this date and did not finish within %',
                        p_logic, p_snapshot_date, v_wait
              USING ERRCODE = 'lock_not_available',
                    DETAIL = 'sessions that may hold it: ' || iam_audit_lock_holders(),
                    HINT = 'Runs of one date never write at the same time; re-run this task once the other run is done.';
    END;
    PERFORM set_config('lock_timeout', v_previous, true);
END
$$;
