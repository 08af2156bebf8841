"""The run's plan: what plan_run decided once, and what every later task of the run receives.

plan_run validates the Variables and the trigger's params and returns RunPlan.to_xcom(); each task gets
that dict from XCom and reads it back with RunPlan.from_xcom, which refuses a missing, unknown or
ill-typed key by name (an XCom written by another version of the package, or edited by hand).
The XCom never holds the external id: the extract task reads it from its Variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date

from iam_audit.config import AuditConfig, ConfigError

MODES = ("live", "replay")
# AuditConfig fields that never travel in the plan: the secret, and the warnings the plan carries itself.
CONFIG_NOT_IN_XCOM = frozenset({"external_id", "warnings"})


class PlanError(ValueError):
    """The plan read from XCom is not one plan_run writes; the message names the key."""


def select_frameworks(requested: list[str] | None, available: tuple[str, ...]) -> list[str]:
    """The trigger's frameworks in catalogue order (empty: all of them); unknown names are a ConfigError."""
    if not requested:
        return list(available)
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise ConfigError(f"param frameworks holds unknown frameworks {unknown}; available: {list(available)}")
    return [f for f in available if f in requested]


@dataclass(frozen=True)
class RunPlan:
    snapshot_date: date
    run_id: str
    mode: str  # live: read IAM now; replay: re-evaluate the stored snapshot (run_modes)
    config: AuditConfig  # to_xcom leaves out its external id; from_xcom gives a config without one
    frameworks: tuple[str, ...] = ()
    requested_accounts: tuple[str, ...] | None = None  # the trigger's subset; None: every account
    # configuration risks the operator accepted: logged by plan_run and shown in the run's report
    warnings: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise PlanError(f"plan key 'mode' must be one of {', '.join(MODES)}, got {self.mode!r}")

    @property
    def check_params(self) -> dict:
        """What the check SQL binds, and nothing else: operators render and log their parameters."""
        return {"snapshot_date": self.snapshot_date.isoformat(), "run_id": self.run_id,
                "frameworks": list(self.frameworks)}

    def to_xcom(self) -> dict:
        """The plan as plan_run's XCom: JSON types only (check_params is read by the check tasks)."""
        config = {f.name: getattr(self.config, f.name) for f in fields(AuditConfig)
                  if f.name not in CONFIG_NOT_IN_XCOM}
        config["accounts"] = list(self.config.accounts) if self.config.accounts else None
        return {
            "snapshot_date": self.snapshot_date.isoformat(),
            "run_id": self.run_id,
            "mode": self.mode,
            "frameworks": list(self.frameworks),
            "requested_accounts": list(self.requested_accounts) if self.requested_accounts else None,
            "warnings": list(self.warnings),
            "check_params": self.check_params,
            "config": config,
        }

    @classmethod
    def from_xcom(cls, value: Mapping) -> RunPlan:
        """The plan from plan_run's XCom; a RunPlan is returned as it is."""
        if isinstance(value, RunPlan):
            return value
        if not isinstance(value, Mapping):
            raise PlanError(f"the run's plan must be the mapping plan_run returns, got {type(value).__name__}")
        _keys("plan", value, required=set(_PLAN_KEYS), optional={"check_params"})
        for key, check in _PLAN_KEYS.items():
            check(f"plan key {key!r}", value[key])
        config = value["config"]
        _keys("plan key 'config'", config, required=set(_CONFIG_KEYS))
        for key, check in _CONFIG_KEYS.items():
            check(f"plan key 'config.{key}'", config[key])
        try:
            snapshot_date = date.fromisoformat(value["snapshot_date"])
        except ValueError:
            raise PlanError(f"plan key 'snapshot_date' must be a date YYYY-MM-DD, "
                            f"got {value['snapshot_date']!r}") from None
        plan = cls(
            snapshot_date=snapshot_date,
            run_id=value["run_id"],
            mode=value["mode"],
            config=AuditConfig(**{**config, "accounts": tuple(config["accounts"]) if config["accounts"] else None}),
            frameworks=tuple(value["frameworks"]),
            requested_accounts=tuple(value["requested_accounts"]) if value["requested_accounts"] else None,
            warnings=tuple(value["warnings"]),
        )
        if "check_params" in value and value["check_params"] != plan.check_params:
            raise PlanError(f"plan key 'check_params' {value['check_params']!r} does not match the plan's "
                            f"snapshot_date, run_id and frameworks {plan.check_params!r}")
        return plan


def _keys(where: str, value, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where} must be a mapping, got {type(value).__name__}")
    missing = sorted(required - set(value))
    if missing:
        raise PlanError(f"{where} has no key {', '.join(map(repr, missing))}")
    unknown = sorted(set(value) - required - set(optional))
    if unknown:
        raise PlanError(f"{where} has unknown key {', '.join(map(repr, unknown))}")


def _of(*types: type, optional: bool = False):
    def check(where: str, value) -> None:
        if value is None and optional:
            return
        # bool is an int in Python: a flag is never a number here, nor a number a flag
        if isinstance(value, bool) != (bool in types) or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types) + (" or null" if optional else "")
            raise PlanError(f"{where} must be {names}, got {type(value).__name__} {value!r}")
    return check


def _strings(optional: bool = False):
    def check(where: str, value) -> None:
        if value is None and optional:
            return
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise PlanError(f"{where} must be a list of strings{' or null' if optional else ''}, got {value!r}")
    return check


def _mapping(where: str, value) -> None:
    if not isinstance(value, Mapping):
        raise PlanError(f"{where} must be a mapping, got {type(value).__name__}")


_PLAN_KEYS = {
    "snapshot_date": _of(str),
    "run_id": _of(str),
    "mode": _of(str),
    "frameworks": _strings(),
    "requested_accounts": _strings(optional=True),
    "warnings": _strings(),
    "config": _mapping,
}
_CONFIG_KEYS = {
    "bucket": _of(str),
    "role_name": _of(str),
    "accounts": _strings(optional=True),
    "kms_key_id": _of(str, optional=True),
    "prefix": _of(str),
    "role_path": _of(str),
    "max_account_drop_percent": _of(int, float),
    "retention_days": _of(int, optional=True),
    "accounts_per_task": _of(int),
    "securityhub_region": _of(str, optional=True),
    "bucket_owner": _of(str, optional=True),
    "allow_unhashed_manifests": _of(bool),
}
