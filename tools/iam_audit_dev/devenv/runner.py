"""Run the DAG once with `airflow dags test` and report progress from the metadata database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DAG_ID = "aws_iam_cis"


@dataclass
class DagRunResult:
    returncode: int
    state: str | None
    run_id: str | None
    failed_tasks: list[str]
    log_file: Path


def airflow_bin() -> str:
    return str(Path(sys.executable).with_name("airflow"))


def migrate(env: dict[str, str]) -> None:
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    subprocess.run([airflow_bin(), "db", "migrate"], env={**os.environ, **env}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ensure_pool(env)


def ensure_pool(env: dict[str, str], slots: int | None = None) -> None:
    """The pool bounding concurrent AWS API work; a scheduler never runs tasks of a pool that does not exist."""
    pool = env.get("IAM_AUDIT_AWS_POOL", "iam_audit_aws")
    listed = subprocess.run([airflow_bin(), "pools", "get", pool], env={**os.environ, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if listed.returncode != 0:
        slots = slots or int(env.get("IAM_AUDIT_AWS_POOL_SLOTS", "16"))
        subprocess.run([airflow_bin(), "pools", "set", pool, str(slots), "Concurrent AWS API work of aws_iam_cis"],
                       env={**os.environ, **env}, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def metadata_url(env: dict[str, str]) -> str:
    """The SQLAlchemy URL of the Airflow metadata database the environment points at."""
    return env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN") or f"sqlite:///{Path(env['AIRFLOW_HOME']) / 'airflow.db'}"


def task_states(engine, run_id: str | None):
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as conn:
            if run_id is None:
                row = conn.execute(text("SELECT run_id FROM dag_run WHERE dag_id = :d ORDER BY id DESC LIMIT 1"),
                                   {"d": DAG_ID}).fetchone()
                if not row:
                    return None, []
                run_id = row[0]
            rows = conn.execute(
                text("SELECT task_id, map_index, state FROM task_instance WHERE dag_id = :d AND run_id = :r"),
                {"d": DAG_ID, "r": run_id},
            ).fetchall()
            return run_id, [tuple(r) for r in rows]
    except SQLAlchemyError:
        return run_id, []


def _describe(rows) -> str:
    extract = [s for t, m, s in rows if t == "extract_account" and m >= 0]
    checks = [s for t, m, s in rows if t.startswith("check_")]
    done = {"success", "failed", "skipped", "upstream_failed"}
    parts = []
    if extract:
        parts.append(f"accounts extracted {sum(s in done for s in extract)}/{len(extract)}"
                     + (f" ({extract.count('failed')} failed)" if "failed" in extract else ""))
    else:
        parts.append("accounts extracted 0 (discovering accounts)")
    if any(t == "load_staging" for t, _, _ in rows):
        state = next(s for t, _, s in rows if t == "load_staging")
        parts.append(f"load {state or 'waiting'}")
    if checks:
        parts.append(f"checks run {sum(s in done for s in checks)}/{len(checks)}")
    return " · ".join(parts)


_TIMESTAMPED = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")


@dataclass
class TaskFailure:
    task_id: str
    message: str
    line: int  # 1-based line of the log where the failure's traceback starts


def first_failure(log_file: Path) -> TaskFailure | None:
    """The first task that failed in an `airflow dags test` log, with its exception's message: what
    "Task failed with exception" was, below the traceback's last frame."""
    lines = log_file.read_text(errors="replace").splitlines()
    task_id = None
    for number, line in enumerate(lines):
        started = re.search(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)", line)
        if started:
            task_id = started.group(1) + (f"[{started.group(2)}]" if started.group(2) != "-1" else "")
        if "Task failed with exception" not in line or task_id is None:
            continue
        block = []
        for following in lines[number + 1:]:
            if _TIMESTAMPED.match(following):
                break
            block.append(following)
        last_frame = max((i for i, text in enumerate(block) if text.startswith("  File ")), default=-1)
        message = "\n".join(text for text in block[last_frame + 1:] if not text.startswith("    ")).strip()
        # "package.module.<locals>.Class: text" -> "Class: text"
        message = re.sub(r"^[\w.<>]+\.(\w+): ", r"\1: ", message)
        return TaskFailure(task_id, message or "(no message)", number + 1)
    return None


def run_dag(env: dict[str, str], logical_date: str | None = None, log_file: Path | None = None,
            conf: str | None = None, progress: Callable[[str], None] | None = print,
            poll_seconds: float = 1.0) -> DagRunResult:
    """`airflow dags test aws_iam_cis [date]` with its log in a file and a progress line as tasks finish."""
    log_file = log_file or Path(env["AIRFLOW_HOME"]) / "dag-run.log"
    args = [airflow_bin(), "dags", "test", DAG_ID]
    if logical_date:
        args.append(logical_date)
    if conf:
        args += ["--conf", conf]
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(metadata_url(env), poolclass=NullPool)
    _, before = task_states(engine, None)
    with open(log_file, "w") as log:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        last, run_id = "", None
        while proc.poll() is None:
            time.sleep(poll_seconds)
            found, rows = task_states(engine, None)
            if found and rows and rows != before:
                run_id = found
                line = _describe(rows)
                if progress and line and line != last:
                    progress(f"  {line}")
                    last = line
    run_id, rows = task_states(engine, None)
    engine.dispose()
    # `airflow dags test` exits 0 whatever the run's outcome: read the outcome from its log.
    state = None
    for line in reversed(log_file.read_text(errors="replace").splitlines()):
        match = re.search(r"DagRun Finished: dag_id=aws_iam_cis.*?run_id=([^,]+),.*? state=(\w+)", line)
        if match:
            run_id, state = run_id or match.group(1), match.group(2)
            break
    failed = sorted({f"{t}[{m}]" if m >= 0 else t for t, m, s in rows if s in ("failed", "upstream_failed")})
    return DagRunResult(proc.returncode, state, run_id, failed, log_file)
