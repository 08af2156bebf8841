"""Catalogue params are validated against each logic's params_schema when the catalogue loads."""

import copy

import pytest

from iam_audit.evaluate.catalogue import CatalogueError, parse_catalogue, read_catalogue_files

DATA = read_catalogue_files()


def _fw_file(framework: str) -> str:
    return f"sql/catalogue/frameworks/{framework}.yaml"


def _control(data: dict, logic: str, framework: str) -> dict:
    return next(c for c in data["frameworks"][_fw_file(framework)]["controls"] if c.get("logic") == logic)


def _with(logic: str, framework: str, params) -> dict:
    data = copy.deepcopy(DATA)
    spec = _control(data, logic, framework)
    if params is None:
        spec.pop("params", None)
    else:
        spec["params"] = params
    return data


def test_the_shipped_catalogue_meets_its_schemas():
    catalogue = parse_catalogue(copy.deepcopy(DATA))
    for file, entry in DATA["controls"].items():
        logic = file.rsplit("/", 1)[1].removesuffix(".yaml")
        declared = set((entry.get("params_schema") or {}).get("properties", {}))
        for control in catalogue.check(logic).controls:
            assert set(control.params) == declared, (logic, control.framework)


@pytest.mark.parametrize(
    ("logic", "framework", "param"),
    [("root_account_usage", "cis_v1.2.0", "max_days_since_use"),
     ("credentials_unused", "cis_v5.0.0", "max_unused_days")],
)
def test_a_missing_param_is_a_load_error_naming_the_file_and_control(logic, framework, param):
    with pytest.raises(CatalogueError) as raised:
        parse_catalogue(_with(logic, framework, None))
    message = str(raised.value)
    control_id = _control(DATA, logic, framework)["id"]
    assert message.startswith(_fw_file(framework))
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
    data["controls"]["sql/catalogue/controls/credentials_unused.yaml"]["params_schema"] = {
        "properties": {"max_unused_days": {"type": "days"}}}
    with pytest.raises(CatalogueError, match="not a valid JSON Schema"):
        parse_catalogue(data)
