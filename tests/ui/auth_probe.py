"""Run by tests/ui/test_compliance_page.py in its own process (own AIRFLOW_HOME): migrates a metadata DB,
initialises Airflow's configured auth manager, asks the page's app for the Compliance page as several
users (Bearer JWTs, as the API server's own routes take them), prints one JSON line of the answers.

DagScopedAuthManager is the simple auth manager with per-DAG grants, as FAB or Keycloak would give:
a user named ``reader_of_<dag_id>`` (role viewer) may read that DAG and no other.
"""

from __future__ import annotations

import json

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

PREFIX = "reader_of_"


class DagScopedAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.get_name().startswith(PREFIX):
            return method == "GET" and details is not None and details.id == user.get_name().removeprefix(PREFIX)
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)


def main() -> None:
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.utils.db import upgradedb
    from fastapi.testclient import TestClient

    from iam_audit.web.plugin import CompliancePlugin

    upgradedb()  # the authorization looks up the DAG's team in the metadata DB
    manager = init_auth_manager()
    client = TestClient(CompliancePlugin.fastapi_apps[0]["app"])

    def status(user: SimpleAuthManagerUser | None = None, token: str | None = None) -> int:
        if user is not None:
            token = manager.generate_jwt(user)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return client.get("/", headers=headers).status_code

    viewer = SimpleAuthManagerUser(username="viewer", role="viewer")
    other = SimpleAuthManagerUser(username=f"{PREFIX}another_dag", role="viewer")
    response = client.get("/", headers={"Authorization": f"Bearer {manager.generate_jwt(viewer)}"})
    print(json.dumps({
        "anonymous": status(),
        "bad_token": status(token="not-a-jwt"),
        "no_role": status(SimpleAuthManagerUser(username="nobody", role=None)),
        "reader_of_another_dag": status(other),
        "reader_of_another_dag_on_that_dag": manager.is_authorized_dag(
            method="GET", user=other, details=DagDetails(id="another_dag")),
        "reader_of_aws_iam_cis": status(SimpleAuthManagerUser(username=f"{PREFIX}aws_iam_cis", role="viewer")),
        "viewer": response.status_code,
        "viewer_page_has_no_warning": 'id="connection-warning"' not in response.text
        and 'id="no-results"' in response.text,
    }))


if __name__ == "__main__":
    main()
