-- The exceptions' guard and matching (tables: sql/migrations/0001_baseline.sql).

-- created_at is the server's clock at INSERT and immutable; expires_on is capped.
-- SECURITY DEFINER: writers of exceptions need no access to the policy table. Its search_path
-- (set below) is pg_catalog, the schema of these tables, then pg_temp last: otherwise pg_temp is
-- searched first and a writer's temporary table named aws_policy_exception_policy would lift the cap.
CREATE OR REPLACE FUNCTION aws_policy_exceptions_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    v_cap integer := coalesce((SELECT max_expiry_days FROM aws_policy_exception_policy), 365);
    v_created date;
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.created_at IS DISTINCT FROM now() THEN
            RAISE EXCEPTION 'aws_policy_exceptions.created_at is set by the database (now()), not by the writer'
                  USING ERRCODE = 'check_violation',
                        HINT = 'Leave created_at out: an exception only mutes snapshots from its creation on.';
        END IF;
    ELSIF NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'aws_policy_exceptions.created_at cannot change (exception %)', OLD.id
              USING ERRCODE = 'check_violation';
    END IF;
    v_created := (NEW.created_at AT TIME ZONE 'UTC')::date;
    IF NEW.expires_on > v_created + v_cap THEN
        RAISE EXCEPTION 'exception expires on %, more than % days after its creation on % (the cap)',
                        NEW.expires_on, v_cap, v_created
              USING ERRCODE = 'check_violation',
                    HINT = 'Choose an earlier expires_on, or raise aws_policy_exception_policy.max_expiry_days.';
    END IF;
    RETURN NEW;
END
$$;
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION aws_policy_exceptions_guard() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END
$$;
CREATE OR REPLACE TRIGGER aws_policy_exceptions_guard
    BEFORE INSERT OR UPDATE ON aws_policy_exceptions
    FOR EACH ROW EXECUTE FUNCTION aws_policy_exceptions_guard();

-- The exception muting one verdict, if any (the one expiring last, then the
-- lowest id). A single-SELECT SQL table function: the planner inlines it into
-- the LEFT JOIN LATERAL of the views; verdicts other than 'fail' short-cut.
CREATE OR REPLACE FUNCTION aws_policy_matching_exception(
    p_snapshot_date date, p_framework text, p_check_id text, p_account_id text,
    p_resource_id text, p_status text)
RETURNS TABLE (exception_id bigint, exception_reason text, exception_expires_on date)
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT e.id, e.reason, e.expires_on
    FROM aws_policy_exceptions e
    WHERE p_status = 'fail'
      AND p_snapshot_date <= e.expires_on
      AND (e.created_at AT TIME ZONE 'UTC')::date <= p_snapshot_date
      AND (e.account_id IS NULL OR e.account_id = p_account_id)
      AND (e.framework IS NULL OR e.framework = p_framework)
      AND (e.check_id IS NULL OR e.check_id = p_check_id)
      AND (e.resource_pattern IS NULL OR p_resource_id LIKE e.resource_pattern)
    ORDER BY e.expires_on DESC, e.id
    LIMIT 1
$$;
