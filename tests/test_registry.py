"""The model registry: generated from Sentry's dependency data, stages consistent."""

from __future__ import annotations

import json
import pickle
from importlib import resources

import pytest

from relocate.schemas.registry import Registry
from relocate.schemas.registry_build import RegistryError, build_registry, compute_stages


@pytest.fixture(scope="module")
def sentry_deps(fixtures_dir):
    deps = fixtures_dir / "model_dependencies"
    return json.loads((deps / "detailed.json").read_text()), json.loads(
        (deps / "sorted.json").read_text()
    )


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def test_committed_registry_matches_generation(sentry_deps, sentry_columns):
    """The committed file is exactly what the generator makes of the fixtures."""
    from relocate.schemas.tables_build import self_references

    columns = json.loads(sentry_columns.read_text())
    detailed, sorted_names = sentry_deps
    generated = build_registry(detailed, sorted_names, self_references(columns))
    committed = json.loads(
        resources.files("relocate.schemas").joinpath("registry.json").read_text("utf-8")
    )
    assert generated == committed


def test_95_relocatable_models(registry):
    assert len(registry.models) == 95
    assert registry["sentry.user"].table == "auth_user"
    assert registry["sentry.user"].scopes == ("User",)
    assert registry["sentry.user"].silo == "Control"
    assert registry["sentry.apitoken"].scopes == ("Config", "Global")
    assert "sentry.group" in registry.excluded_names
    assert "sentry.group" not in registry


def test_every_stage_is_above_its_references(registry):
    for model in registry.models:
        for dep in model.depends_on:
            assert registry[dep].stage < model.stage, (model.name, dep)
        if not model.depends_on:
            assert model.stage == 1
        else:
            assert model.stage == 1 + max(registry[d].stage for d in model.depends_on)


def test_order_agrees_with_sorted_json(registry, sentry_deps):
    _, sorted_names = sentry_deps
    relocatable = [n for n in sorted_names if n in registry]
    assert [m.name for m in registry.models] == relocatable
    position = {n: i for i, n in enumerate(sorted_names)}
    for model in registry.models:
        for dep in model.depends_on:
            assert position[dep] < position[model.name]


def test_every_fk_target_is_a_model_or_marked_excluded(registry):
    for model in registry.models:
        for fk in model.foreign_keys:
            if fk.excluded:
                assert fk.target not in registry, (model.name, fk.field)
                assert fk.target in registry.excluded_names
            else:
                assert fk.target in registry, (model.name, fk.field)
            assert fk.column == (fk.field if fk.field.endswith("_id") else fk.field + "_id")


def test_known_relations(registry):
    member = registry["sentry.organizationmember"]
    inviter = member.fk("inviter_id")
    assert inviter is not None and inviter.target == "sentry.user" and inviter.nullable
    org = member.fk("organization")
    assert org is not None and org.column == "organization_id" and not org.nullable
    group = registry["workflow_engine.workflowgroupstatus"].fk("group")
    assert group is not None and group.excluded
    assert registry["sentry.email"].relocation_dependencies == ("sentry.user",)
    assert registry["sentry.email"].stage > registry["sentry.user"].stage
    assert registry["sentry.useremail"].stage > registry["sentry.email"].stage


def test_registry_pickles(registry):
    clone = pickle.loads(pickle.dumps(registry))
    assert clone["sentry.project"] == registry["sentry.project"]


def _entry(name, fks=(), deps=(), scope="Organization"):
    return {
        "model": name,
        "table_name": name.replace(".", "_"),
        "relocation_scope": scope,
        "silos": ["Region"],
        "foreign_keys": {
            f: {"model": t, "kind": "FlexibleForeignKey", "nullable": False} for f, t in fks
        },
        "uniques": [],
        "relocation_dependencies": list(deps),
        "dangling": False,
    }


def test_cycle_fails_generation_naming_the_models():
    detailed = {
        "a.one": _entry("a.one", fks=[("two", "a.two")]),
        "a.two": _entry("a.two", fks=[("three", "a.three")]),
        "a.three": _entry("a.three", deps=["a.one"]),
    }
    with pytest.raises(RegistryError) as err:
        build_registry(detailed, ["a.one", "a.two", "a.three"])
    assert "cycle" in str(err.value)
    for name in ("a.one", "a.two", "a.three"):
        assert name in str(err.value)


def test_unknown_target_fails_generation_naming_the_models():
    detailed = {"a.one": _entry("a.one", fks=[("ghost", "a.ghost")])}
    with pytest.raises(RegistryError) as err:
        build_registry(detailed, ["a.one"])
    assert "a.one -> a.ghost" in str(err.value)


def test_sorted_json_disagreement_is_reported():
    detailed = {"a.one": _entry("a.one"), "a.two": _entry("a.two", fks=[("one", "a.one")])}
    with pytest.raises(RegistryError, match="a.two before a.one"):
        build_registry(detailed, ["a.two", "a.one"])
    with pytest.raises(RegistryError, match="a.extra"):
        build_registry(detailed, ["a.one", "a.two", "a.extra"])


def test_self_references_are_not_stage_dependencies():
    detailed = {
        "a.one": _entry("a.one", fks=[("parent", "a.one")]),
        "a.two": _entry("a.two", fks=[("one", "a.one")], scope="Excluded"),
    }
    doc = build_registry(detailed, ["a.one", "a.two"], {"a.one": ["parent_id"]})
    (one,) = doc["models"]
    assert one["stage"] == 1 and one["self_references"] == ["parent_id"]
    assert doc["excluded"] == {"a.two": "a_two"}


def test_compute_stages_simple_chain():
    assert compute_stages({"a": [], "b": ["a"], "c": ["a", "b"]}) == {"a": 1, "b": 2, "c": 3}
