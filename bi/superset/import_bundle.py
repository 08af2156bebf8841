"""Import the dashboard bundle (bi/superset/dashboard) into Superset, pointing its database at a URI.

Run with Superset's Python and SUPERSET_CONFIG_PATH set. The bundle's database entry carries a
placeholder URI without a password; this sets the real URI (BI_SQLALCHEMY_URI, without password)
and passes the password (BI_PG_PASSWORD) the way Superset's import API takes it, so no password
is written to any file. Overwrites what a previous import created (same UUIDs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

BUNDLE = Path(__file__).resolve().parent / "dashboard"


def bundle_contents(uri: str) -> dict[str, str]:
    contents = {}
    for path in sorted(BUNDLE.rglob("*.yaml")):
        key = path.relative_to(BUNDLE).as_posix()
        text = path.read_text()
        if key.startswith("databases/"):
            config = yaml.safe_load(text)
            config["sqlalchemy_uri"] = uri
            text = yaml.safe_dump(config, sort_keys=False)
        contents[key] = text
    return contents


def main() -> int:
    from superset.app import create_app

    uri = os.environ["BI_SQLALCHEMY_URI"]
    password = os.environ.get("BI_PG_PASSWORD", "")
    app = create_app()
    with app.app_context():
        from flask import g
        from superset import security_manager
        from superset.commands.dashboard.importers.dispatcher import ImportDashboardsCommand

        g.user = security_manager.find_user(username=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
        from sqlalchemy.engine.url import make_url
        from superset.constants import PASSWORD_MASK

        if password:  # the importer keeps the given password only when the URI shows the mask
            uri = make_url(uri).set(password=PASSWORD_MASK).render_as_string(hide_password=False)
        contents = bundle_contents(uri)
        passwords = {key: password for key in contents if key.startswith("databases/")}
        ImportDashboardsCommand(contents, overwrite=True, passwords=passwords).run()
        # A dashboard import leaves an existing database entry as it was: set its URI and password.
        from superset import db
        from superset.models.core import Database

        for key, text in contents.items():
            if key.startswith("databases/"):
                entry = db.session.query(Database).filter_by(uuid=yaml.safe_load(text)["uuid"]).one()
                entry.set_sqlalchemy_uri(uri)
                if password:
                    entry.password = password
        db.session.commit()
    print(f"imported {len(contents)} files from {BUNDLE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
