"""bi/superset/serve.py without Superset installed: its configuration, its server and its admin set-up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SERVE = Path(__file__).resolve().parents[2] / "bi" / "superset" / "serve.py"


def _serve():
    spec = importlib.util.spec_from_file_location("superset_serve", SERVE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_talisman_is_on_with_a_policy_that_loads_nothing_from_elsewhere(tmp_path):
    serve = _serve()
    config: dict = {}
    exec(serve.superset_config("k" * 40, tmp_path), config)  # noqa: S102 - the file Superset itself executes
    assert config["TALISMAN_ENABLED"] is True
    policy = config["TALISMAN_CONFIG"]["content_security_policy"]
    for directive, sources in policy.items():
        sources = [sources] if isinstance(sources, str) else sources
        assert all(s in ("'self'", "'none'", "data:", "blob:", "'unsafe-inline'", "'strict-dynamic'")
                   for s in sources), (directive, sources)
    assert policy["object-src"] == "'none'" and "'unsafe-inline'" not in policy["script-src"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]  # no remote image: no beacon


def test_the_admin_password_never_reaches_a_command_line():
    serve = _serve()
    for arguments, stdin in serve.admin_commands("superset", "s3cret-pw"):
        assert not any("s3cret-pw" in a for a in arguments) and "--password" not in arguments
        assert stdin == "s3cret-pw\ns3cret-pw\n"


def test_superset_is_served_by_gunicorn_on_localhost():
    serve = _serve()
    command = serve.server_command(serve.Prepared(env={}, admin_password="x", sqlalchemy_uri="u", port=8088))
    assert Path(command[0]).name == "gunicorn" and "run" not in command
    assert command[command.index("--bind") + 1] == "127.0.0.1:8088"
