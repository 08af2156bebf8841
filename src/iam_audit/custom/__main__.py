"""python -m iam_audit.custom validate <folder> [--dsn DSN | --conn-id ID]

Validates a custom controls folder as the DAG would load it (catalogue schema and params, `needs`,
the check files' shape and SQL), then on a real PostgreSQL: applies the schema and the merged catalogue
in a throw-away database, runs every accepted check once on empty staging (PostgreSQL parses and plans
it against the staging schema), and runs the folder's fixtures (fixtures/*.yaml) with the project's
own harness (iam_audit.evaluate.fixtures). Exit status 0 only when nothing was refused and every
fixture case gave exactly its expected verdicts.

PostgreSQL: --dsn (a libpq connection string of a server where the login may CREATE DATABASE) or
--conn-id (an Airflow connection); in the project's dev environment `make validate-controls DIR=...`
(iam_audit_dev.devenv.validate_controls) gives the embedded server's.

Fixture file format (fixtures/<name>.yaml):

    logic: <logic>
    cases:
      - name: what the case shows
        staging:                      # iam_audit.evaluate.fixtures.FIXTURE_HELPERS, in order
          - account: {account_id: '111111111111'}          # all data sets collected; missing: {data set: code}
          - account_tags: {account_id: '111111111111', environment: production}
          - user: {account_id: '111111111111', name: alice, password: true, mfa: false}
          - row: {table: inline_policies, account_id: '111111111111', ...}   # any staging row
        expect:                       # resource_id: status, for every framework control of the logic
          arn:aws:iam::111111111111:user/alice: fail
        reasons:                      # optional: resource_id: text the reason must contain
          arn:aws:iam::111111111111:user/alice: without MFA
"""

from __future__ import annotations

import argparse
import sys
import uuid
from contextlib import contextmanager

import psycopg

from iam_audit.custom import CustomControls, Refusal, RefusedFile, load_custom, read_yaml  # noqa: I001


def _server_dsn(args) -> str:
    if args.dsn:
        return args.dsn
    if args.conn_id:
        from airflow.providers.postgres.hooks.postgres import PostgresHook

        return PostgresHook(postgres_conn_id=args.conn_id).get_uri().replace("postgresql+psycopg2", "postgresql")
    raise SystemExit("error: give --dsn (a PostgreSQL server where the login may CREATE DATABASE), --conn-id "
                     "(an Airflow connection to one), or --no-database; in this project's dev environment, "
                     "`make validate-controls DIR=...` uses the embedded PostgreSQL")


@contextmanager
def scratch_database(server_dsn: str):
    """A throw-away database on the server, dropped after: the schema and catalogue are applied there,
    never to the compliance database itself."""
    name = f"iam_audit_validate_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = psycopg.connect(psycopg.conninfo.make_conninfo(server_dsn, dbname=name))
        try:
            yield conn
        finally:
            conn.close()
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def plan_checks(conn, controls: CustomControls) -> list[Refusal]:
    """Every accepted custom check run once on empty staging, rolled back: PostgreSQL's errors (unknown
    column, type mismatch) with the line of the check file they point at."""
    from iam_audit.custom.sql import as_parsable
    from iam_audit.database import check_parameters, render_check, split_statements

    problems = []
    frameworks = list(controls.catalogue.frameworks)
    for logic in controls.logics:
        path = controls.folder / "checks" / f"{logic}.sql"
        source = path.read_text(encoding="utf-8")
        statement = None
        try:
            with conn.cursor() as cur:
                for statement in split_statements(render_check(logic, controls.search_path())):
                    cur.execute(statement, check_parameters("2000-01-01", "validate", frameworks))
        except psycopg.Error as exc:
            problems.append(Refusal(str(path), _error_line(exc, statement or "", source, as_parsable),
                                    f"PostgreSQL: {str(exc).splitlines()[0]}"))
        finally:
            conn.rollback()
    return problems


def _error_line(exc: psycopg.Error, statement: str, source: str, as_parsable) -> int:
    """The check file's line of PostgreSQL's error position: the body is copied verbatim into the
    statement, so its lines shift by a constant."""
    position = getattr(exc.diag, "statement_position", None)
    call_line = next((n for n, line in enumerate(source.splitlines(), 1) if "{% call" in line), 1)
    if not position:
        return call_line
    sent, _ = as_parsable(statement)
    line_in_statement = sent[: int(position) - 1].count("\n")
    body_start = source.find("%}", source.find("{% call")) + 2
    body_end = source.find("{% endcall")
    body = source[body_start:body_end]
    at = statement.find(body.strip()[:200])
    if at < 0:
        return call_line
    first_body_line_in_statement = statement[:at].count("\n")
    first_body_line_in_file = source[: body_start + len(body) - len(body.lstrip())].count("\n") + 1
    return max(call_line, first_body_line_in_file + line_in_statement - first_body_line_in_statement)


def run_fixtures(conn, controls: CustomControls, out) -> tuple[list[str], dict[str, set[str]]]:
    """Run fixtures/*.yaml; returns (failures, {logic: statuses some case expects})."""
    from iam_audit.evaluate.fixtures import run_fixture_case

    failures, expected = [], {}
    frameworks = list(controls.catalogue.frameworks)
    for path in sorted((controls.folder / "fixtures").glob("*.yaml")):
        try:
            content = read_yaml(path)
        except RefusedFile as exc:
            failures.append(str(exc.refusal))
            continue
        logic = content.get("logic") if isinstance(content, dict) else None
        if logic not in controls.logics:
            failures.append(f"{path}:1: logic: {logic!r} is not an accepted custom control of this folder")
            continue
        for case in content.get("cases") or []:
            where = f"{path}:{getattr(case, 'line', 1)}"
            name = case.get("name", "?")
            want = {str(k): v for k, v in (case.get("expect") or {}).items()}
            expected.setdefault(logic, set()).update(want.values())
            try:
                got = run_fixture_case(conn, logic, case.get("staging") or [], frameworks, controls.search_path())
            except (psycopg.Error, ValueError, TypeError) as exc:
                failures.append(f"{where}: case {name!r}: the staging could not be inserted or the check failed: "
                                f"{str(exc).splitlines()[0]}")
                continue
            by_resource: dict[str, set] = {}
            for (_, _, _, resource), (status, _) in got.items():
                by_resource.setdefault(resource, set()).add(status)
            problems = []
            for resource in sorted(set(want) | set(by_resource)):
                statuses = by_resource.get(resource)
                if resource not in want:
                    problems.append(f"{resource}: unexpected verdict {sorted(statuses)}")
                elif statuses != {want[resource]}:
                    problems.append(f"{resource}: expected {want[resource]}, got "
                                    f"{sorted(statuses) if statuses else 'no verdict'}")
            for resource, text in (case.get("reasons") or {}).items():
                reasons = [why for (_, _, _, r), (_, why) in got.items() if r == str(resource)]
                if not reasons or not all(text in why for why in reasons):
                    problems.append(f"{resource}: reason does not contain {text!r}: {reasons}")
            if problems:
                failures.append(f"{where}: case {name!r} ({logic}): " + "; ".join(problems))
                print(f"FAIL {logic}: {name}", file=out)
            else:
                print(f"ok   {logic}: {name}", file=out)
    return failures, expected


def validate(folder: str, server_dsn: str | None, out=sys.stdout) -> int:
    from iam_audit.database import apply_schema

    controls = load_custom(folder)
    problems = [str(r) for r in controls.refused]
    for refusal in controls.refused:
        print(f"refused: {refusal}", file=out)
    if controls.folder is None:
        return 1
    print(f"{len(controls.logics)} custom check logic(s) accepted: {', '.join(controls.logics) or 'none'}; "
          f"frameworks: {', '.join(controls.frameworks) or 'none'}", file=out)
    if server_dsn is None:
        return 1 if problems else 0
    with scratch_database(server_dsn) as conn:
        apply_schema(conn, controls.catalogue)
        planned = plan_checks(conn, controls)
        for refusal in planned:
            print(f"refused: {refusal}", file=out)
        problems += [str(r) for r in planned]
        failures, expected = run_fixtures(conn, controls, out)
    for failure in failures:
        print(f"fixture: {failure}", file=out)
    problems += failures
    for logic in controls.logics:
        missing = {"pass", "fail"} - expected.get(logic, set())
        if missing:
            message = (f"{controls.folder}/fixtures: no case of logic {logic!r} expects "
                       f"{' or '.join(sorted(missing))}: give it a passing and a failing case")
            print(f"fixture: {message}", file=out)
            problems.append(message)
    print(("valid" if not problems else f"{len(problems)} problem(s)"), file=out)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iam_audit.custom",
                                     description="Validate a custom controls folder and run its fixtures.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("validate", help="validate the folder and run its fixture tests on PostgreSQL")
    check.add_argument("folder")
    check.add_argument("--dsn", help="libpq connection string of a PostgreSQL server (a scratch database is "
                                     "created and dropped there)")
    check.add_argument("--conn-id", help="an Airflow connection id to that server instead")
    check.add_argument("--no-database", action="store_true", help="only what the DAG parse checks")
    args = parser.parse_args(argv)
    dsn = None if args.no_database else _server_dsn(args)
    return validate(args.folder, dsn)


if __name__ == "__main__":
    raise SystemExit(main())
