"""Builds the model registry from Sentry's model-dependency data.

Sentry publishes, per release, ``model_dependencies/detailed.json`` (every model with its
table, scope, silos, foreign keys and unique sets) and ``sorted.json`` (the global
dependency order). ``build_registry`` turns them into the project's own format: only the
relocatable models, each with its import stage (1 + the highest stage of the models it
references), which is what lets the pipeline shape be fixed before any row is read.

The generated file is committed (``relocate/schemas/registry.json``); regenerate it with
``python scripts/generate_schemas.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

EXCLUDED_SCOPE = "Excluded"
KNOWN_SCOPES = ("User", "Organization", "Config", "Global")


class RegistryError(ValueError):
    """The dependency data cannot produce a consistent registry."""


def fk_column(field: str) -> str:
    """Returns the database column of a foreign-key field (Django's ``<field>_id`` rule)."""
    return field if field.endswith("_id") else f"{field}_id"


def _scopes(raw: str | list[str]) -> list[str]:
    # detailed.json writes one scope as a string and a scope set as a list of names.
    return [raw] if isinstance(raw, str) else list(raw)


def _references(entry: Mapping[str, Any]) -> list[str]:
    """Models that must be written before this one (FK targets and declared dependencies)."""
    name = entry["model"]
    targets = [fk["model"] for fk in entry.get("foreign_keys", {}).values()]
    targets += list(entry.get("relocation_dependencies", []))
    return sorted({t for t in targets if t != name})


def compute_stages(depends_on: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Assigns each model 1 + the highest stage of the models it depends on.

    Args:
        depends_on: model -> models it references (self-references already removed). Every
            referenced model must itself be a key.

    Raises:
        RegistryError: on an unknown target or a cycle; the message names the models.
    """
    unknown = sorted(
        f"{model} -> {target}"
        for model, targets in depends_on.items()
        for target in targets
        if target not in depends_on
    )
    if unknown:
        raise RegistryError("Unknown dependency target(s): " + ", ".join(unknown))
    stages: dict[str, int] = {}
    visiting: list[str] = []

    def visit(model: str) -> int:
        if model in stages:
            return stages[model]
        if model in visiting:
            cycle = visiting[visiting.index(model) :] + [model]
            raise RegistryError("Dependency cycle: " + " -> ".join(cycle))
        visiting.append(model)
        stage = 1 + max((visit(t) for t in depends_on[model]), default=0)
        visiting.pop()
        stages[model] = stage
        return stage

    for model in sorted(depends_on):
        visit(model)
    return stages


def build_registry(
    detailed: Mapping[str, Mapping[str, Any]],
    sorted_names: Sequence[str],
    self_references: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Builds the registry document from ``detailed.json`` and ``sorted.json``.

    Args:
        detailed: the parsed ``detailed.json`` (model name -> relations).
        sorted_names: the parsed ``sorted.json`` (model names in dependency order).
        self_references: model -> columns that reference the model's own table, found in
            the column definitions (``detailed.json`` omits self-references).

    Returns:
        A JSON-ready dict: ``{"models": [...], "excluded": {name: table}}``, models in
        ``sorted.json`` order.

    Raises:
        RegistryError: when the two files disagree, a foreign key names an unknown model,
            or the dependencies form a cycle. The message names the models involved.
    """
    self_references = self_references or {}
    missing_in_sorted = sorted(set(detailed) - set(sorted_names))
    missing_in_detailed = sorted(set(sorted_names) - set(detailed))
    if missing_in_sorted or missing_in_detailed:
        raise RegistryError(
            "detailed.json and sorted.json disagree: only in detailed.json: "
            f"{missing_in_sorted or 'none'}; only in sorted.json: {missing_in_detailed or 'none'}"
        )
    for name, entry in detailed.items():
        for scope in _scopes(entry["relocation_scope"]):
            if scope != EXCLUDED_SCOPE and scope not in KNOWN_SCOPES:
                raise RegistryError(f"{name}: unknown relocation scope {scope!r}")

    relocatable = {
        name
        for name, entry in detailed.items()
        if EXCLUDED_SCOPE not in _scopes(entry["relocation_scope"])
    }
    # Every model takes part in the cycle and unknown-target checks; stages only matter for
    # relocatable ones, but an Excluded model in a cycle is still a broken source.
    stages = compute_stages({name: _references(entry) for name, entry in detailed.items()})
    position = {name: i + 1 for i, name in enumerate(sorted_names)}
    for name, entry in detailed.items():
        for dep in _references(entry):
            if position[dep] > position[name]:
                raise RegistryError(f"sorted.json places {name} before {dep}, which it references")

    models = []
    for name in sorted_names:
        if name not in relocatable:
            continue
        entry = detailed[name]
        fks = []
        for field, fk in sorted(entry.get("foreign_keys", {}).items()):
            target = fk["model"]
            fks.append(
                {
                    "field": field,
                    "column": fk_column(field),
                    "target": target,
                    "nullable": bool(fk["nullable"]),
                    "kind": fk["kind"],
                    "excluded": target not in relocatable,
                }
            )
        # The relocatable stage ignores Excluded targets: their rows are never imported, so
        # they impose no ordering; a row pointing at one is dropped (or its FK nulled).
        rel_refs = [t for t in _references(entry) if t in relocatable]
        silos = list(entry.get("silos", []))
        models.append(
            {
                "name": name,
                "table": entry["table_name"],
                "scopes": _scopes(entry["relocation_scope"]),
                "silo": silos[0] if len(silos) == 1 else ",".join(silos),
                "order": position[name],
                "stage": 0,  # filled below
                "depends_on": rel_refs,
                "foreign_keys": fks,
                "uniques": [sorted(u) for u in entry.get("uniques", [])],
                "relocation_dependencies": sorted(entry.get("relocation_dependencies", [])),
                "self_references": sorted(self_references.get(name, [])),
                "dangling": bool(entry.get("dangling", False)),
            }
        )
    rel_stages = compute_stages({m["name"]: m["depends_on"] for m in models})
    for m in models:
        m["stage"] = rel_stages[m["name"]]
    del stages  # only computed for validation
    excluded = {
        name: detailed[name]["table_name"] for name in sorted_names if name not in relocatable
    }
    return {"models": models, "excluded": excluded}
