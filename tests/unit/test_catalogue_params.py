"""Catalogue params are validated against each logic's params_schema when the catalogue loads."""

import copy

import pytest
import yaml
from iam_audit.catalogue import CatalogueError, parse_catalogue
from iam_audit.paths import CATALOGUE_FILE

DATA = yaml.safe_load(CATALOGUE_FILE.read_text(encoding="utf-8"))


def _entry(data: dict, logic: str) -> dict:
    return next(e for e in data["controls"] if e["logic"] == logic)


def _with(logic: str, framework: str, params) -> dict:
    data = copy.deepcopy(DATA)
    spec = _entry(data, logic)["frameworks"][framework]
    if params is None:
        spec.pop("params", None)
    else:
        spec["params"] = params
    return data


def test_the_shipped_catalogue_meets_its_schemas():
    catalogue = parse_catalogue(copy.deepcopy(DATA))
    for entry in DATA["controls"]:
        declared = set((entry.get("params_schema") or {}).get("properties", {}))
        for control in catalogue.check(entry["logic"]).controls:
            assert set(control.params) == declared, (entry["logic"], control.framework)


@pytest.mark.parametrize(
    ("logic", "framework", "param"),
    [("root_account_usage", "cis_v1.2.0", "max_days_since_use"),
     ("credentials_unused", "cis_v5.0.0", "max_unused_days")],
)
def test_a_missing_param_is_a_load_error_naming_the_control(logic, framework, param):
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(_with(logic, framework, None), source="cat.yaml")
    message = str(raised.value)
    control_id = _entry(DATA, logic)["frameworks"][framework]["id"]
    assert f"{framework} control {control_id} ({logic})" in message
    assert param in message and "required" in message


@pytest.mark.parametrize(
    ("params", "words"),
    [({"max_unused_days": "45"}, ["max_unused_days", "not of type 'integer'"]),
     ({"max_unused_days": 0}, ["max_unused_days", "minimum"]),
     ({"max_unused_days": 45, "typo_days": 1}, ["typo_days"])],
)
def test_wrong_type_range_or_unknown_param_is_a_load_error(params, words):
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(_with("credentials_unused", "cis_v3.0.0", params))
    for word in words:
        assert word in str(raised.value)


def test_params_on_a_logic_without_schema_are_a_load_error():
    with pytest.raises(CatalogueError, match=r"console_users_mfa.*no params_schema"):
        parse_catalogue(_with("console_users_mfa", "cis_v3.0.0", {"anything": 1}))


def test_an_invalid_schema_is_a_load_error():
    data = copy.deepcopy(DATA)
    _entry(data, "credentials_unused")["params_schema"] = {"properties": {"max_unused_days": {"type": "days"}}}
    with pytest.raises(CatalogueError, match="not a valid JSON Schema"):
        parse_catalogue(data)
