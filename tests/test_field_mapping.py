"""Every field of Sentry's own exports maps to a column of the target schema (issue item 8).

The mapping goes through ``tables.json`` only: each column records its export ``field``
(``user`` -> ``user_id`` for a real FK field, ``name`` -> ``first_name`` for a db_column).
Whatever does not map is listed below with its reason; the lists are checked both ways,
so an exception that stops occurring, or a new mismatch, fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relocate.db.ddl import load_tables
from relocate.schemas.registry import Registry
from relocate.schemas.removed import REMOVED_FIELDS, REMOVED_MODELS, is_removed_field

#: Models in the fixtures that are not in the registry, with the reason.
NOT_IN_REGISTRY: dict[str, str] = {
    "sentry.alertruleexcludedprojects": "model removed from Sentry after 24.7.0 (REMOVED_MODELS)",
    "sentry.alertruletriggerexclusion": "model removed from Sentry after 24.7.0 (REMOVED_MODELS)",
    "sentry.incidentsubscription": "model removed from Sentry after 24.7.0 (REMOVED_MODELS)",
    "sentry.spanattributeextractionruleconfig": "model removed after 24.7.0 (REMOVED_MODELS)",
    "sentry.spanattributeextractionrulecondition": "model removed after 24.7.0 (REMOVED_MODELS)",
    "sites.site": "Django's sites framework, never a Sentry model: skipped as unknown",
}

#: Fields that map to no column although they are not removed fields, with the reason.
UNKNOWN_FIELDS: dict[tuple[str, str], str] = {
    ("sentry.user", "doesnotexist"): "deliberately bogus field of invalid-user.json",
}

#: (fixture, model, field) pairs that map to no column, and why. Checked to occur.
EXPECTED_UNMAPPED: dict[str, set[tuple[str, str]]] = {
    "release-snapshots/test_at_24_7_0.json": {
        ("sentry.alertrule", "include_all_projects"),  # BooleanField removed in late 2024
    },
    "fresh-install.json": {
        ("sentry.team", "actor"),  # DELETED_FIELDS shim: Actor model removed
        ("sentry.team", "org_role"),  # DELETED_FIELDS shim
        ("sentry.rule", "owner"),  # DELETED_FIELDS shim: replaced by owner_user_id/team
    },
    "org-and-project.json": {("sentry.team", "actor")},
    "invalid-user.json": {("sentry.user", "doesnotexist"), ("sentry.user", "is_suspended")},
    "user-with-minimum-privileges.json": {("sentry.user", "is_suspended")},
    "user-with-roles-no-superadmin.json": {("sentry.user", "is_suspended")},
}

#: (fixture, model) pairs of models not in the registry. Checked to occur.
EXPECTED_UNKNOWN_MODELS: dict[str, set[str]] = {
    "release-snapshots/test_at_24_7_0.json": {
        "sentry.alertruleexcludedprojects",
        "sentry.alertruletriggerexclusion",
        "sentry.incidentsubscription",
        "sentry.spanattributeextractionruleconfig",
        "sentry.spanattributeextractionrulecondition",
    },
    "datetime-with-zeroed-millis.json": {"sites.site"},
}

REQUIRED_FIXTURES = ("release-snapshots/test_at_24_7_0.json", "fresh-install.json")
OTHER_FIXTURES = (
    "app-user-with-empty-email.json",
    "datetime-millis.json",
    "datetime-with-unzeroed-millis.json",
    "datetime-with-zeroed-millis.json",
    "duplicate-username-and-organization-slug.json",
    "invalid-user.json",
    "org-and-project.json",
    "single-integration.json",
    "single-option.json",
    "user-pk-mapping.json",
    "user-with-maximum-privileges.json",
    "user-with-minimum-privileges.json",
    "user-with-roles-no-superadmin.json",
    "user-with-superadmin-no-roles.json",
)


@pytest.fixture(scope="module")
def tables() -> dict:
    return load_tables()["tables"]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def _field_map(entry: dict) -> dict[str, str]:
    return {c["field"]: c["column"] for c in entry["columns"]}


@pytest.mark.parametrize("fixture", REQUIRED_FIXTURES + OTHER_FIXTURES)
def test_every_field_maps_to_a_column(
    fixture: str, fixtures_dir: Path, tables: dict, registry: Registry
) -> None:
    rows = json.loads((fixtures_dir / fixture).read_text())
    unmapped: set[tuple[str, str]] = set()
    unknown_models: set[str] = set()
    for row in rows:
        model = row["model"].lower()
        if model not in registry:
            assert model in NOT_IN_REGISTRY, f"{fixture}: model {model} not in the registry"
            unknown_models.add(model)
            continue
        entry = tables[model]
        assert entry["table"] == registry[model].table
        field_map = _field_map(entry)
        seen_columns: dict[str, str] = {}
        for field in row["fields"]:
            column = field_map.get(field)
            if column is None:
                assert is_removed_field(model, field) or (model, field) in UNKNOWN_FIELDS, (
                    f"{fixture}: {model}.{field} maps to no column and is not a known exception"
                )
                unmapped.add((model, field))
                continue
            assert column not in seen_columns, f"{model}: {field} and {seen_columns[column]}"
            seen_columns[column] = field
        assert "id" not in row["fields"]  # the pk travels as "pk", mapped to column id
    assert unmapped == EXPECTED_UNMAPPED.get(fixture, set())
    assert unknown_models == EXPECTED_UNKNOWN_MODELS.get(fixture, set())


@pytest.mark.parametrize("fixture", REQUIRED_FIXTURES)
def test_columns_missing_from_export_have_defaults(
    fixture: str, fixtures_dir: Path, tables: dict, registry: Registry
) -> None:
    """A NOT NULL column whose field an export lacks must have a default, or the row cannot load."""
    rows = json.loads((fixtures_dir / fixture).read_text())
    for row in rows:
        if row["model"] not in registry:
            continue
        for col in tables[row["model"]]["columns"]:
            if col["column"] == "id" or col["field"] in row["fields"]:
                continue
            assert col["nullable"] or col["default"] is not None, (
                f"{fixture}: {row['model']}.{col['column']} is NOT NULL without default"
            )


def test_fk_fields_map_to_their_id_column(tables: dict, registry: Registry) -> None:
    """Real FK fields are exported without ``_id``; the column is ``<field>_id``."""
    for model in registry.models:
        field_map = _field_map(tables[model.name])
        for fk in model.foreign_keys:
            assert field_map[fk.field] == fk.column, f"{model.name}.{fk.field}"
            expected = fk.field if fk.field.endswith("_id") else f"{fk.field}_id"
            assert fk.column == expected


def test_removed_fields_and_models_are_not_in_the_schema(tables: dict, registry: Registry) -> None:
    for model, fields in REMOVED_FIELDS.items():
        if model in tables:
            field_map = _field_map(tables[model])
            assert not (fields & set(field_map)), model
    assert not (REMOVED_MODELS & {m.name for m in registry.models})
    assert not (REMOVED_MODELS & registry.excluded_names)
    for model, reason in NOT_IN_REGISTRY.items():
        assert model not in registry
        assert (model in REMOVED_MODELS) == ("REMOVED_MODELS" in reason), model
