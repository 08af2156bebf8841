-- aws_policy_results: one row per snapshot_date x framework x control x resource,
-- exactly as the earlier table held them, computed from the verdict history
-- (sql/functions/011_history.sql): each evaluation of a date, the intervals of its
-- variant and account covering that date, each control the variant answered that
-- day (title and severity as the catalogue had them that day); an evaluation
-- whose data was incomplete gives its one account-level 'error' verdict.
-- run_id and evaluated_at are those of the run that evaluated the account.
-- Filters on snapshot_date, framework, check_id and account_id are pushed down.
CREATE OR REPLACE VIEW aws_policy_results AS
SELECT e.snapshot_date, s.framework, s.check_id, s.title, s.severity, e.account_id,
       i.resource_id, i.resource_type, i.status, i.reason, e.run_id, e.evaluated_at, e.control_logic
FROM aws_policy_evaluations e
JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
JOIN aws_policy_verdicts i
  ON i.variant_id = e.variant_id AND i.account_id = e.account_id
 AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
WHERE e.error_reason IS NULL
UNION ALL
SELECT e.snapshot_date, s.framework, s.check_id, s.title, s.severity, e.account_id,
       e.account_id, 'account', 'error', 'Could not evaluate: ' || e.error_reason, e.run_id, e.evaluated_at,
       e.control_logic
FROM aws_policy_evaluations e
JOIN aws_policy_scopes s ON s.snapshot_date = e.snapshot_date AND s.variant_id = e.variant_id
WHERE e.error_reason IS NOT NULL;

-- Writing rows into aws_policy_results still works (tools and tests of the earlier
-- design): each row joins the verdicts of its (snapshot_date, control, account) in
-- a variant of its own control. An account-level 'error' row whose reason starts
-- with 'Could not evaluate: ' records an evaluation with incomplete data.
CREATE OR REPLACE FUNCTION aws_policy_results_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_variant integer;
    v_error text;
BEGIN
    INSERT INTO aws_policy_variants (control_logic, params)
    VALUES (coalesce(NEW.control_logic, ''), jsonb_build_object('framework', NEW.framework, 'check_id', NEW.check_id))
    ON CONFLICT (control_logic, params) DO NOTHING;
    SELECT variant_id INTO v_variant FROM aws_policy_variants
    WHERE control_logic = coalesce(NEW.control_logic, '')
      AND params = jsonb_build_object('framework', NEW.framework, 'check_id', NEW.check_id);
    INSERT INTO aws_policy_scopes AS s (snapshot_date, framework, check_id, variant_id, title, severity)
    VALUES (NEW.snapshot_date, NEW.framework, NEW.check_id, v_variant, NEW.title, NEW.severity)
    ON CONFLICT (snapshot_date, framework, check_id) DO UPDATE
       SET variant_id = EXCLUDED.variant_id, title = EXCLUDED.title, severity = EXCLUDED.severity;
    IF NEW.status = 'error' AND NEW.resource_id = NEW.account_id AND NEW.resource_type = 'account'
       AND NEW.reason LIKE 'Could not evaluate: %' THEN
        v_error := substr(NEW.reason, length('Could not evaluate: ') + 1);
    END IF;
    DROP TABLE IF EXISTS pg_temp._eval_pairs, pg_temp._eval_verdicts;
    CREATE TEMP TABLE _eval_pairs ON COMMIT DROP AS
    SELECT v_variant AS variant_id, NEW.account_id AS account_id, NEW.control_logic AS control_logic,
           v_error AS error_reason;
    CREATE TEMP TABLE _eval_verdicts ON COMMIT DROP AS
    SELECT i.variant_id, i.account_id, i.resource_id, i.resource_type, i.status, i.reason
    FROM aws_policy_evaluations e
    JOIN aws_policy_verdicts i
      ON i.variant_id = e.variant_id AND i.account_id = e.account_id
     AND i.valid_from <= e.snapshot_date AND i.valid_to >= e.snapshot_date
    WHERE v_error IS NULL AND e.snapshot_date = NEW.snapshot_date AND e.variant_id = v_variant
      AND e.account_id = NEW.account_id AND e.error_reason IS NULL AND i.resource_id <> NEW.resource_id;
    IF v_error IS NULL THEN
        INSERT INTO _eval_verdicts
        VALUES (v_variant, NEW.account_id, NEW.resource_id, NEW.resource_type, NEW.status, NEW.reason);
    END IF;
    PERFORM aws_policy_store_evaluation(NEW.snapshot_date, NEW.run_id);
    UPDATE aws_policy_evaluations SET evaluated_at = coalesce(NEW.evaluated_at, now())
    WHERE snapshot_date = NEW.snapshot_date AND variant_id = v_variant AND account_id = NEW.account_id;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER aws_policy_results_insert
    INSTEAD OF INSERT ON aws_policy_results
    FOR EACH ROW EXECUTE FUNCTION aws_policy_results_insert();

-- DELETE removes whole evaluations: deleting any row of a (snapshot_date, account,
-- control) removes that date's evaluation of the control's variant in the account,
-- for every framework that shares it (pipeline.prune_other_accounts deletes whole
-- accounts of a date). UPDATE is refused: verdicts are rewritten by re-running a check.
CREATE OR REPLACE FUNCTION aws_policy_results_delete() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM aws_policy_forget_evaluation(OLD.snapshot_date, s.variant_id, OLD.account_id)
    FROM aws_policy_scopes s
    WHERE s.snapshot_date = OLD.snapshot_date AND s.framework = OLD.framework AND s.check_id = OLD.check_id;
    RETURN OLD;
END
$$;

CREATE OR REPLACE FUNCTION aws_policy_results_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'aws_policy_results cannot be updated: re-run the check of snapshot % to rewrite its verdicts',
        OLD.snapshot_date USING ERRCODE = 'feature_not_supported';
END
$$;

CREATE OR REPLACE TRIGGER aws_policy_results_delete
    INSTEAD OF DELETE ON aws_policy_results
    FOR EACH ROW EXECUTE FUNCTION aws_policy_results_delete();

CREATE OR REPLACE TRIGGER aws_policy_results_update
    INSTEAD OF UPDATE ON aws_policy_results
    FOR EACH ROW EXECUTE FUNCTION aws_policy_results_update();
