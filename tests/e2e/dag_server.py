"""Whole-DAG runs for the e2e tests, in one long-lived process: what `airflow dags test` does
(parse the DAG file, write it to the metadata database, `dag.test()`), without paying Airflow's
start-up, its configuration and its in-process Execution API again for every run.

Protocol: one JSON request a line on standard input,
    {"env": {name: value, ...}, "logical_date": "YYYY-MM-DD", "log_file": path, "conf": {...} (optional)}
and one JSON answer a line on the standard output it started with,
    {"state": "success" | "failed" | null, "run_id": ..., "error": null | "..."}.
Each run sees the starting environment plus its "env" (the DAG file is parsed again, so settings
read at parse time, such as the retry count, apply), and writes everything it prints, task logs
included, to its log file, as `airflow dags test` does to its standard output.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

DAG_ID = "aws_iam_cis"


def run_once(request: dict) -> dict:
    # as `airflow dags test DAG_ID DATE`: the date parsed by the CLI's own parser, the DAG file parsed
    # again and written to the metadata database, then one dag.test()
    from airflow._shared.timezones.timezone import parse as parsedate
    from airflow.utils.cli import get_bagged_dag

    dag = get_bagged_dag(bundle_names=None, dag_id=DAG_ID)
    dag_run = dag.test(logical_date=parsedate(request["logical_date"]), run_conf=request.get("conf"))
    state = getattr(dag_run.state, "value", dag_run.state) if dag_run else None
    return {"state": state, "run_id": dag_run.run_id if dag_run else None}


def main() -> int:
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    base_env = dict(os.environ)
    for line in sys.stdin:
        request = json.loads(line)
        os.environ.clear()
        os.environ.update({**base_env, **request.get("env", {})})
        log_fd = os.open(request["log_file"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(1), os.dup(2)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        answer: dict = {"state": None, "run_id": None, "error": None}
        try:
            answer.update(run_once(request))
        except BaseException as exc:  # noqa: BLE001 - the test reads it; the server serves the next run
            traceback.print_exc()
            answer["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in (*saved, log_fd):
                os.close(fd)
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
