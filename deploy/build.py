"""Build the managed-Airflow artefacts of deploy/ from a built wheel (make dist).

    python deploy/build.py astro --wheel dist/iam_audit-X-py3-none-any.whl --out build/astro
    python deploy/build.py mwaa  --wheel dist/iam_audit-X-py3-none-any.whl --out build/mwaa \
        [--airflow 3.3.2] [--python 3.11] [--constraints deploy/constraints/...] [--no-dependency-wheels]

Only the standard library and pip: runs from the checkout's dev venv (make astro-project, make mwaa-bundle)
or any Python that has pip.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DAG_FILE = ROOT / "dags" / "aws_iam_cis.py"
# The contract (src/iam_audit/dag.py, config.py, web/queries.py): tests/install/test_deploy.py checks these
# names against the package's own constants.
CONNECTIONS = ("aws_default", "postgres_default", "compliance_reader")
REQUIRED_VARIABLES = ("iam_audit_bucket",)
OPTIONAL_VARIABLES = ("iam_audit_role_name", "iam_audit_external_id", "iam_audit_accounts")
POOL = ("iam_audit_aws", 16, "Concurrent AWS API work of aws_iam_cis")
# MWAA installs requirements.txt with plugins.zip unpacked here.
MWAA_PLUGINS = "/usr/local/airflow/plugins"
# Airflow itself, its providers and the task SDK come with the managed image: never in the bundle.
AIRFLOW_PACKAGES = re.compile(r"^apache-airflow($|-)")


def wheel_version(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    if name != "iam_audit":
        raise SystemExit(f"{wheel} is not an iam-audit wheel")
    return version


def _copy_dag(dags: Path) -> None:
    dags.mkdir(parents=True, exist_ok=True)
    shutil.copy2(DAG_FILE, dags / DAG_FILE.name)


# ---- Astronomer ------------------------------------------------------------------------------------------

ASTRO_SETTINGS = """\
# Connections, Variables and the pool for `astro dev start` on a laptop (the Astro CLI imports this
# file into the local Airflow). Deployments on Astro get them from the Environment Manager or from
# AIRFLOW_CONN_* / AIRFLOW_VAR_* environment variables (.env.example): never commit secrets here.
airflow:
  connections:
    - conn_id: aws_default
      conn_type: aws
      # Empty login and password: the worker's own identity (Astro's workload identity, an IAM role).
      conn_login:
      conn_password:
      conn_extra:
        region_name: us-east-1
    - conn_id: postgres_default
      conn_type: postgres
      conn_host: postgres.example.internal
      conn_schema: compliance
      conn_login: iam_audit
      conn_password:
      conn_port: 5432
    - conn_id: compliance_reader
      conn_type: postgres
      conn_host: postgres.example.internal
      conn_schema: compliance
      conn_login: compliance_page
      conn_password:
      conn_port: 5432
  pools:
    - pool_name: {pool}
      pool_slot: {slots}
      pool_description: {pool_description}
  variables:
    - variable_name: iam_audit_bucket
      variable_value: my-iam-audit-raw-bucket
    - variable_name: iam_audit_role_name
      variable_value: IamAuditReadOnly
"""

ASTRO_ENV = """\
# Copy to .env (git-ignored by the Astro CLI) and fill in; on a Deployment, set the same names as
# environment variables (secrets marked secret). Values here are placeholders, not credentials.
AIRFLOW_VAR_IAM_AUDIT_BUCKET=my-iam-audit-raw-bucket
AIRFLOW_VAR_IAM_AUDIT_ROLE_NAME=IamAuditReadOnly
# AIRFLOW_VAR_IAM_AUDIT_EXTERNAL_ID=<the ExternalId of the audit role's trust policy>
# AIRFLOW_CONN_POSTGRES_DEFAULT=postgresql://iam_audit:<password>@postgres.example.internal:5432/compliance
# AIRFLOW_CONN_COMPLIANCE_READER=postgresql://compliance_page:<password>@postgres.example.internal:5432/compliance
# AIRFLOW_CONN_AWS_DEFAULT=aws://?region_name=us-east-1
"""

ASTRO_DOCKERFILE = """\
# Astro Runtime for Airflow {airflow_minor} or later (iam-audit needs Airflow >=3.2): pick the tag of your
# Deployment's runtime. The image's ONBUILD steps install requirements.txt, then copy this project
# to /usr/local/airflow.
FROM {runtime_image}
{install}
"""


def build_astro(wheel: Path, out: Path, runtime_image: str, from_index: bool) -> Path:
    version = wheel_version(wheel)
    if out.exists():
        shutil.rmtree(out)
    _copy_dag(out / "dags")
    (out / "include").mkdir(parents=True)
    (out / "plugins").mkdir()
    (out / "packages.txt").write_text("")
    if from_index:
        # The package from PyPI or the organisation's index (PIP_EXTRA_INDEX_URL as a build secret).
        (out / "requirements.txt").write_text(f"iam-audit=={version}\n")
        install = ""
    else:
        # The wheel travels in include/: requirements.txt is installed before the project is copied in,
        # so the wheel is installed by the Dockerfile after the ONBUILD copy.
        shutil.copy2(wheel, out / "include" / wheel.name)
        (out / "requirements.txt").write_text(
            f"# iam-audit=={version} is installed from include/{wheel.name} by the Dockerfile\n")
        install = f"RUN pip install --no-cache-dir include/{wheel.name}\n"
    airflow_minor = ".".join(runtime_image.rsplit(":", 1)[-1].split("-")[0].split(".")[:2])
    (out / "Dockerfile").write_text(ASTRO_DOCKERFILE.format(runtime_image=runtime_image, install=install,
                                                            airflow_minor=airflow_minor))
    (out / "airflow_settings.yaml").write_text(ASTRO_SETTINGS.format(
        pool=POOL[0], slots=POOL[1], pool_description=POOL[2]))
    (out / ".env.example").write_text(ASTRO_ENV)
    (out / ".dockerignore").write_text(".env\n.astro\n")
    (out / "README.md").write_text((HERE / "astronomer" / "README.md").read_text())
    return out


# ---- Amazon MWAA -----------------------------------------------------------------------------------------

def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version.strip()
    return pins


def _wheel_requirements(wheel: Path) -> list[str]:
    """The wheel's unconditional Requires-Dist names (extras left out), normalised."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    names = []
    for line in lines:
        if line.startswith("Requires-Dist: ") and "extra ==" not in line:
            requirement = line.removeprefix("Requires-Dist: ")
            name = re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]
            names.append(re.sub(r"[-_.]+", "-", name).lower())
            if "[binary]" in requirement:
                names.append("psycopg-binary")
    return names


def build_mwaa(wheel: Path, out: Path, airflow: str, python: str, constraints: Path,
               dependency_wheels: bool) -> Path:
    """plugins.zip (the wheel, the wheels of its non-Airflow dependencies at the constraints' versions,
    constraints.txt) and requirements.txt installing from it with --no-index."""
    version = wheel_version(wheel)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    _copy_dag(out / "dags")
    pins = _pins(constraints)
    with tempfile.TemporaryDirectory(prefix="mwaa-plugins-") as tmp:
        plugins = Path(tmp)
        shutil.copy2(wheel, plugins / wheel.name)
        shutil.copy2(constraints, plugins / "constraints.txt")
        if dependency_wheels:
            wanted = [n for n in _wheel_requirements(wheel) if not AIRFLOW_PACKAGES.match(n)]
            unpinned = [n for n in wanted if n not in pins]
            if unpinned:
                raise SystemExit(f"{constraints} pins none of {unpinned}: refresh it (deploy/constraints/refresh.sh)")
            # MWAA runs on Amazon Linux, x86_64: binary wheels for that platform and the environment's Python.
            subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
                            "--python-version", python, "--implementation", "cp", "-d", str(plugins),
                            *[f"{n}=={pins[n]}" for n in wanted]], check=True)
        with zipfile.ZipFile(out / "plugins.zip", "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(plugins.iterdir()):
                archive.write(path, path.name)
    (out / "requirements.txt").write_text(
        f"# Amazon MWAA, Airflow {airflow}, Python {python}: installs iam-audit {version} from plugins.zip\n"
        f"# without internet access (plugins.zip unpacks to {MWAA_PLUGINS}).\n"
        f"--constraint \"{MWAA_PLUGINS}/constraints.txt\"\n"
        f"--no-index\n"
        f"--find-links {MWAA_PLUGINS}\n"
        f"iam-audit=={version}\n")
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="target", required=True)
    astro = sub.add_parser("astro", help="an Astro project folder")
    astro.add_argument("--wheel", type=Path, required=True)
    astro.add_argument("--out", type=Path, required=True)
    astro.add_argument("--runtime-image", default="astrocrpublic.azurecr.io/runtime:3.3-1")
    astro.add_argument("--from-index", action="store_true",
                       help="requirements.txt names iam-audit==VERSION (published to an index) instead of the wheel")
    mwaa = sub.add_parser("mwaa", help="requirements.txt + plugins.zip for an MWAA environment")
    mwaa.add_argument("--wheel", type=Path, required=True)
    mwaa.add_argument("--out", type=Path, required=True)
    mwaa.add_argument("--airflow", default="3.3.2")
    mwaa.add_argument("--python", default="3.11")
    mwaa.add_argument("--constraints", type=Path,
                      help="default: deploy/constraints/constraints-AIRFLOW-pythonPYTHON.txt")
    mwaa.add_argument("--no-dependency-wheels", action="store_true",
                      help="only the wheel and constraints.txt (offline; the environment must have the dependencies)")
    args = parser.parse_args(argv)
    if args.target == "astro":
        out = build_astro(args.wheel, args.out, args.runtime_image, args.from_index)
    else:
        constraints = args.constraints or HERE / "constraints" / f"constraints-{args.airflow}-python{args.python}.txt"
        out = build_mwaa(args.wheel, args.out, args.airflow, args.python, constraints,
                         not args.no_dependency_wheels)
    print(out)


if __name__ == "__main__":
    main()
