"""The "Compliance" page of the Airflow UI, registered as a plugin (entry point airflow.plugins).

A FastAPI app mounted by the API server under /compliance (``fastapi_apps``) renders the page
(iam_audit.web.app); an ``external_views`` entry puts it in the UI's navigation, where the UI shows it
in a frame at /plugin/compliance. Nothing heavy is imported here: every task instance's process loads
the plugins, and the app is built on its first request in the API server (LazyApp).
"""

from airflow.plugins_manager import AirflowPlugin

from iam_audit.web import URL_PREFIX
from iam_audit.web.app import LazyApp, create_app


class CompliancePlugin(AirflowPlugin):
    name = "iam_audit_compliance"
    fastapi_apps = [{"app": LazyApp(create_app), "url_prefix": URL_PREFIX, "name": "CIS compliance"}]
    external_views = [{
        "name": "Compliance",
        # Relative to the UI's base URL (no leading slash), so it also works behind a path prefix.
        "href": URL_PREFIX.lstrip("/") + "/",
        "url_route": "compliance",
        "destination": "nav",
        "nav_top_level": True,
        "icon": URL_PREFIX.lstrip("/") + "/icon.svg",
    }]
