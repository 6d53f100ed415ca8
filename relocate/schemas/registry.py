"""The model registry: what relocate knows about each relocatable Sentry model.

Loaded from the committed ``registry.json`` (see ``registry_build``). Everything here is
immutable and picklable, so a ``Registry`` can travel inside a DoFn to Dataflow workers.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from typing import Any

from relocate.schemas.shipped import ship

#: ImportScope -> the relocation scopes it admits (spec section 3.1).
IMPORT_SCOPES: dict[str, frozenset[str]] = {
    "users": frozenset({"User"}),
    "organizations": frozenset({"User", "Organization"}),
    "config": frozenset({"User", "Config"}),
    "global": frozenset({"User", "Organization", "Config", "Global"}),
}


@dataclass(frozen=True)
class ForeignKey:
    """One foreign-key field of a model, as the export writes it."""

    field: str
    column: str
    target: str
    nullable: bool
    kind: str
    excluded: bool


@dataclass(frozen=True)
class ModelInfo:
    """A relocatable model."""

    name: str
    table: str
    scopes: tuple[str, ...]
    silo: str
    order: int
    stage: int
    depends_on: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...]
    uniques: tuple[tuple[str, ...], ...]
    relocation_dependencies: tuple[str, ...]
    self_references: tuple[str, ...]
    dangling: bool

    @property
    def is_control(self) -> bool:
        return self.silo == "Control"

    def admitted_by(self, import_scope: str) -> bool:
        """Whether any of the model's possible scopes is admitted by the import scope."""
        return bool(IMPORT_SCOPES[import_scope].intersection(self.scopes))

    def fk(self, field_name: str) -> ForeignKey | None:
        for fk in self.foreign_keys:
            if fk.field == field_name:
                return fk
        return None


def _model(raw: dict[str, Any]) -> ModelInfo:
    return ModelInfo(
        name=raw["name"],
        table=raw["table"],
        scopes=tuple(raw["scopes"]),
        silo=raw["silo"],
        order=raw["order"],
        stage=raw["stage"],
        depends_on=tuple(raw["depends_on"]),
        foreign_keys=tuple(ForeignKey(**fk) for fk in raw["foreign_keys"]),
        uniques=tuple(tuple(u) for u in raw["uniques"]),
        relocation_dependencies=tuple(raw["relocation_dependencies"]),
        self_references=tuple(raw["self_references"]),
        dangling=raw["dangling"],
    )


@dataclass(frozen=True)
class Registry:
    """The relocatable models, in Sentry's dependency order."""

    models: tuple[ModelInfo, ...]
    excluded: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Registry:
        return cls(
            models=tuple(_model(m) for m in raw["models"]),
            excluded=tuple(sorted(raw.get("excluded", {}).items())),
        )

    def __reduce__(self) -> tuple[Any, tuple]:
        if self.__dict__.get("_packaged"):
            # The registry committed with the package ships as a reference to it: every
            # worker runs the launcher's package (Dataflow installs its sdist).
            return (_packaged_registry, ())
        # Any other: one blob, not its ~40 KB (and cached lookups) in every DoFn.
        return ship(self, Registry, (self.models, self.excluded))

    @classmethod
    def load(cls) -> Registry:
        """Loads the registry committed with the package."""
        text = resources.files("relocate.schemas").joinpath("registry.json").read_text("utf-8")
        registry = cls.from_dict(json.loads(text))
        registry.__dict__["_packaged"] = True
        return registry

    @cached_property
    def by_name(self) -> dict[str, ModelInfo]:
        return {m.name: m for m in self.models}

    def get(self, name: str) -> ModelInfo | None:
        return self.by_name.get(name)

    def __getitem__(self, name: str) -> ModelInfo:
        return self.by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    @cached_property
    def excluded_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.excluded)

    @property
    def max_stage(self) -> int:
        return max(m.stage for m in self.models)

    def models_in_stage(self, stage: int) -> list[ModelInfo]:
        return [m for m in self.models if m.stage == stage]


@functools.lru_cache(maxsize=1)
def _packaged_registry() -> Registry:
    """The packaged registry, loaded once per process (what a shipped reference means)."""
    return Registry.load()
