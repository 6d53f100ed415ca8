"""An export with one row of every relocatable model, built from the registry and schema.

Every foreign key points at the row built for its target model; values are synthesised
from each column's type. ``minimal=True`` leaves nullable foreign keys null, so each row's
admission depends only on its own model's scope.
"""

from __future__ import annotations

import uuid
from typing import Any

from relocate.db.ddl import load_tables
from relocate.schemas.registry import Registry

TS = "2023-06-22T22:59:55.488Z"

#: Columns left null so the models' CHECK constraints (one owner, rule xor alert rule) hold.
NULL_FOR_CHECKS = {
    "sentry.monitor": {"owner_team_id"},
    "sentry.rule": {"owner_team"},
    "workflow_engine.detector": {"owner_team"},
    "sentry.rulesnooze": {"alert_rule"},
    "workflow_engine.alertruledetector": {"alert_rule"},
    "workflow_engine.alertruleworkflow": {"alert_rule"},
}

#: Nullable foreign keys kept even in the minimal export (a CHECK needs one of two).
KEEP_IN_MINIMAL = {
    "sentry.rulesnooze": {"rule"},
    "workflow_engine.alertruledetector": {"rule"},
    "workflow_engine.alertruleworkflow": {"rule"},
}

#: Per-model values that the generic synthesis would get wrong.
OVERRIDES: dict[str, dict[str, Any]] = {
    "sentry.user": {
        "username": "exhaustive",
        "email": "exhaustive@example.com",
        "password": "md5$abc$def",
        "flags": "0",
    },
    "sentry.email": {"email": "exhaustive@example.com"},
    "sentry.useremail": {"email": "exhaustive@example.com"},
    "sentry.useroption": {"key": "language", "value": '"en"'},
    "sentry.userip": {"ip_address": "127.0.0.2"},
    "sentry.savedsearch": {"is_global": False, "visibility": "organization"},
    "sentry.organization": {"slug": "exhaustive-org", "status": 0},
    "sentry.option": {"key": "exhaustive.option", "value": '"v"'},
    "sentry.controloption": {"key": "exhaustive.option", "value": '"v"'},
}


def _value(column: dict[str, Any], index: int) -> Any:
    kind = column["type"]
    if kind.endswith("[]"):
        return []
    if kind in ("bigint", "integer", "smallint", "bigserial", "serial"):
        return 1
    if kind == "boolean":
        return False
    if kind == "timestamptz":
        return TS
    if kind == "date":
        return "2023-06-22"
    if kind in ("jsonb", "json"):
        return {}
    if kind == "uuid":
        return str(uuid.UUID(int=index + 1))
    if kind == "inet":
        return "127.0.0.1"
    if kind.startswith("double") or kind == "real":
        return 1.0
    text = f"v{index}x"
    if kind.startswith("varchar(") and kind.endswith(")"):
        limit = int(kind[8:-1])
        text = text[:limit]
    return text


def exhaustive_rows(minimal: bool = False) -> list[dict[str, Any]]:
    """One row per relocatable model, in registry (export) order, pk = 1."""
    registry = Registry.load()
    tables = load_tables()["tables"]
    rows = []
    for index, model in enumerate(registry.models):
        fks = {fk.field: fk for fk in model.foreign_keys}
        fields: dict[str, Any] = {}
        for column in tables[model.name]["columns"]:
            field = column["field"]
            if column["column"] == "id":
                continue
            fk = fks.get(field)
            if field in NULL_FOR_CHECKS.get(model.name, ()):
                fields[field] = None
                continue
            if fk is not None:
                if fk.excluded:
                    fields[field] = None if fk.nullable else 1
                elif minimal and fk.nullable and field not in KEEP_IN_MINIMAL.get(model.name, ()):
                    fields[field] = None
                else:
                    fields[field] = 1
                continue
            if column["nullable"] and column["default"] is None and minimal:
                fields[field] = None
                continue
            fields[field] = _value(column, index)
        fields.update(OVERRIDES.get(model.name, {}))
        rows.append({"model": model.name, "pk": 1, "fields": fields})
    return rows


#: Models that can never be imported by Sentry's rules: their required FK targets an
#: Excluded model (spec 5.2), so the row is dropped with that reason.
NEVER_IMPORTED = {"workflow_engine.workflowgroupstatus"}
