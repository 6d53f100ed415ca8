"""The engine: compiles the model table into row generators, sizes and writes the export.

``generate(out, rows, seed, scope, shuffle)`` writes a JSON array of ``{"model", "pk",
"fields"}`` rows, one per line, in the registry's (Sentry's export) order, model by model
and within a model organization by organization. Nothing but the current chunk of output
is held in memory: primary keys are arithmetic (``models.py``), so a foreign key never
needs a lookup.

How the table becomes rows: every ``models.Model`` is compiled, once per process, into
one Python generator function: nested loops over the organizations, the run's parents and
their rows; the ``let`` assignments in order; and one f-string per row built from the
fields (``pk_of(...)`` is inlined as arithmetic). Interpreted row by row instead (a
function call per value, a generic format), the table would cost about as much again as
a row takes now (under 1 us on average); compiled, it runs as fast as the hand-written
generators it replaced, for about 10 ms of compiling per process.
``compiled_source("sentry.user")`` shows what one model compiles into.

Determinism: the same ``(N, seed, scope, shuffle)`` gives the same bytes. Every model
draws from its own random stream, seeded by ``(seed, model)``, in the order its ``let``
lists say; values that two models must agree on are functions of the seed and the row's
position (``values.SeedTables``).

``--shuffle`` writes the same rows in a random order (a seeded scatter into bucket files
of about 50,000 rows next to ``OUT``, each bucket shuffled in memory, then concatenated):
an export whose children may come before their parents.
"""

from __future__ import annotations

import functools
import itertools
import math
import operator
import random
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from relocate.generate import values
from relocate.generate.models import MODELS, STD_PROJECTS, STD_USERS, FieldValue, Let, Model
from relocate.generate.values import SeedTables, compact_json

__all__ = (
    "GEN_SCOPES",
    "GenerateResult",
    "OrgShape",
    "Plan",
    "compiled_source",
    "generate",
    "iter_rows",
    "org_counts",
    "plan_export",
)

GEN_SCOPES = ("organizations", "global")

_CHUNK_ROWS = 8192
_BUCKET_ROWS = 50_000
_MAX_BUCKETS = 512


class OrgShape(NamedTuple):
    """One organization, as the table's expressions see it (``models.py`` names them)."""

    org: int
    users: int
    projects: int
    members: int
    invites: int
    teams: int
    dashboards: int
    user0: int

    @classmethod
    def of(cls, org: int, users: int, projects: int) -> OrgShape:
        """The ``org``-th organization (0-based), with ``users`` users and ``projects``."""
        return cls(
            org,
            users,
            projects,
            max(1, users * 4 // 5),
            users // 25,
            max(1, (projects + 1) // 2),
            max(1, projects // 3),
            org * STD_USERS,
        )


_STANDARD_ORG = OrgShape.of(0, STD_USERS, STD_PROJECTS)
#: Models written once per export compile against this organization (they use none of it).
_EXPORT_ORG = OrgShape.of(0, 0, 0)

# -- compiling the table -------------------------------------------------------------------

#: Names bound at the top of a compiled generator: the model's random stream, the seed's
#: tables.
_PREAMBLE = (
    "bits = rng.getrandbits",
    "rand = rng.random",
    "randrange = rng.randrange",
    "ts = tables.ts",
    "quoted_ts = tables.quoted_ts",
    "name_of = tables.name_of",
    "email_of = tables.email_of",
    "second_email_of = tables.second_email_of",
    "org_slug = tables.org_slug",
)


@dataclass(frozen=True)
class CompiledModel:
    """A model of the table, compiled.

    Attributes:
        model: the table's entry.
        rows: ``rows(orgs, rng, tables)`` yields the model's rows (compact JSON text) for
            every organization of ``orgs``, drawing from ``rng``.
        source: the Python code of ``rows``.
    """

    model: Model
    rows: Callable[[Iterable[OrgShape], random.Random, SeedTables], Iterator[str]]
    source: str


def _field_json(value: FieldValue) -> str:
    """A field's value as f-string text: templates as they are, constants as JSON."""
    if isinstance(value, str):
        return value
    return compact_json(value).replace("{", "{{").replace("}", "}}")


def _lets(lets: Let, indent: str) -> list[str]:
    return [f"{indent}{target} = {expression}" for target, expression in lets]


_NAMES_PARENT = re.compile(r"\bparent\b")


def _count_expression(model: Model) -> str:
    """An expression of the organization's names: the model's rows in one organization."""
    terms = []
    for run in model.runs:
        count, index, per = run.parent.count, run.parent.index, run.per_parent
        if isinstance(per, int) or not _NAMES_PARENT.search(per):
            terms.append(f"({count}) * ({per})")
        else:
            parents = f"range({count})" if index == "n" else f"({index} for n in range({count}))"
            terms.append(f"sum({per} for parent in {parents})")
    return " + ".join(terms)


def _count_source(models: Iterable[Model], name: str) -> list[str]:
    """``def <name>(<org shape>)``: a tuple, the rows of each of ``models`` in it."""
    counts = "".join(f"        {_count_expression(model)},\n" for model in models)
    return [f"def {name}({', '.join(OrgShape._fields)}):", f"    return (\n{counts}    )"]


def _rows_source(model: Model, own_rows_per_org: int) -> str:
    """``def rows(orgs, rng, tables)``: a generator of the model's rows.

    ``own_rows_per_org``: the model's rows in a standard organization (its pk stride).
    """
    lines = ["def rows(orgs, rng, tables):", *(f"    {line}" for line in _PREAMBLE)]
    lines.append(f"    for {', '.join(OrgShape._fields)} in orgs:")
    lines.append(f"        base = {model.first_pk} + org * {own_rows_per_org}")
    lines.append(_FOREIGN_BASES)
    lines.append("        local = 0")
    lines += _lets(model.org_let, " " * 8)
    for run in model.runs:
        lines.append(f"        # {run.per_parent} per {run.parent.name}")
        if run.parent.index == "n":
            lines.append(f"        for parent in range({run.parent.count}):")
        else:
            lines.append(f"        for n in range({run.parent.count}):")
            lines.append(f"            parent = {run.parent.index}")
        lines += _lets(run.parent_let, " " * 12)
        if run.per_parent == 1:
            lines.append("            child = 0")
            indent = " " * 12
        else:
            lines.append(f"            for child in range({run.per_parent}):")
            indent = " " * 16
        fields = ",".join(f'"{name}":{_field_json(value)}' for name, value in run.fields)
        template = f'{{{{"model":"{model.name}","pk":{{pk}},"fields":{{{{{fields}}}}}}}}}'
        lines += [
            f"{indent}pk = base + local",
            *_lets(run.let, indent),
            f"{indent}yield f{template!r}",
            f"{indent}local += 1",
        ]
    return "\n".join(lines) + "\n"


#: Where the organization loop of a compiled model gets the first pk of every model its
#: foreign keys point at (``_inline_pk_of`` fills it in).
_FOREIGN_BASES = "        # foreign bases"


def _inline_pk_of(code: str, first_pks: dict[str, int], rows_per_org: dict[str, int]) -> str:
    """Rewrites every ``pk_of("sentry.m", index)`` in ``code`` as arithmetic.

    The pk of an organization's ``index``-th row of M is ``first_pk + org * rows_per_org +
    index`` (``models.py``): the organization's part is computed once per organization
    (``base_m``), and a foreign key costs a row an addition, as it did written by hand.
    """
    out: list[str] = []
    bases: dict[str, str] = {}
    pos = 0
    while (call := code.find("pk_of(", pos)) >= 0:
        match = _PK_OF_MODEL.match(code, call)
        if not match or match.group(1) not in first_pks:
            where = code[call : call + 60]
            raise ValueError(f"pk_of needs a generated model's name and an index: {where!r}")
        model = match.group(1)
        end = _closing_paren(code, match.end())
        index = code[match.end():end].strip()
        base = "base_" + model.split(".", 1)[1]
        bases[base] = f"{first_pks[model]} + org * {rows_per_org[model]}"
        out += [code[pos:call], base if index == "0" else f"({base} + ({index}))"]
        pos = end + 1
    code = "".join(out) + code[pos:]
    assignments = "".join(f"        {name} = {value}\n" for name, value in sorted(bases.items()))
    return code.replace(_FOREIGN_BASES + "\n", assignments)


_PK_OF_MODEL = re.compile(r'pk_of\("([\w.]+)",\s*')


def _closing_paren(code: str, pos: int) -> int:
    """Where the call whose arguments start at ``pos`` closes (strings skipped)."""
    depth = 0
    quote = ""
    for i in range(pos, len(code)):
        ch = code[i]
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            if depth == 0:
                return i
            depth -= 1
    raise ValueError(f"unbalanced pk_of( in {code[pos - 40 : pos + 40]!r}")


def _check_fields_do_not_draw(model: Model) -> None:
    """Random draws belong in ``let``, where their order is explicit; fields may not draw."""
    for run in model.runs:
        for name, value in run.fields:
            if isinstance(value, str) and _DRAW_CALL.search(value):
                raise ValueError(
                    f"{model.name}.{name}: a field may not draw at random ({value!r}); "
                    "draw the value in let and name it in the field"
                )


#: A call that draws from the random stream: fields may not make one (``let`` does).
_DRAW_CALL = re.compile(r"\b(?:bits|rand|randrange)\s*\(")


def _compile(label: str, source: str, name: str) -> Callable[..., object]:
    """Compiles ``source`` (code made from the table) and returns its function ``name``."""
    try:
        code = compile(source, f"<table: {label}>", "exec")
    except SyntaxError as e:
        raise ValueError(f"{label}: the table gives invalid code: {e}\n{source}") from e
    defined = {name: getattr(values, name) for name in values.EXPRESSION_GLOBALS}
    exec(code, defined)
    return defined[name]


@functools.cache
def _count_all() -> Callable[..., tuple[int, ...]]:
    """``counts(<org shape>)``: the rows of every model of ``MODELS`` in one organization.

    One function for all the models: ``plan_export`` tries 500 shapes of organization.
    """
    return _compile("counts", "\n".join(_count_source(MODELS, "counts")), "counts")


@functools.cache
def _rows_per_standard_org() -> dict[str, int]:
    """Rows of every model in a standard organization (what pks are computed from)."""
    return dict(zip((model.name for model in MODELS), _count_all()(*_STANDARD_ORG)))


@functools.cache
def _compiled(name: str) -> CompiledModel:
    """The model ``name`` of the table, compiled (once per process, when first written)."""
    model = _MODELS_BY_NAME[name]
    _check_fields_do_not_draw(model)
    rows_per_org = _rows_per_standard_org()
    own = 0 if model.once else rows_per_org[name]
    source = _inline_pk_of(_rows_source(model, own), _FIRST_PKS, rows_per_org)
    return CompiledModel(model, _compile(name, source, "rows"), source)


_MODELS_BY_NAME = {model.name: model for model in MODELS}
_FIRST_PKS = {model.name: model.first_pk for model in MODELS}


def compiled_source(model: str) -> str:
    """The Python code the table compiles ``model`` (``sentry.<name>``) into."""
    return _compiled(model).source


# -- sizing ---------------------------------------------------------------------------------


@functools.cache
def _per_org_models(scope: str) -> tuple[tuple[str, ...], Callable[[tuple[int, ...]], tuple]]:
    """The per-organization models of ``scope``, and what picks their counts from all."""
    picked = [
        i
        for i, model in enumerate(MODELS)
        if not model.once and (model.scope == "organizations" or scope == "global")
    ]
    return tuple(MODELS[i].name for i in picked), operator.itemgetter(*picked)


@functools.lru_cache(maxsize=2048)
def _org_counts(users: int, projects: int, scope: str) -> tuple[tuple[str, int], ...]:
    names, pick = _per_org_models(scope)
    return tuple(zip(names, pick(_count_all()(*OrgShape.of(0, users, projects)))))


def org_counts(
    users: int = STD_USERS, projects: int = STD_PROJECTS, scope: str = "organizations"
) -> dict[str, int]:
    """Rows per model of one organization with ``users`` users and ``projects`` projects.

    The generators produce exactly these counts; ``plan_export`` sizes the export with them.
    """
    return dict(_org_counts(users, projects, scope))


def _fixed_counts() -> dict[str, int]:
    """Rows that do not belong to an organization."""
    counts = _count_all()(*_EXPORT_ORG)
    return {model.name: n for model, n in zip(MODELS, counts) if model.once}


@dataclass(frozen=True)
class Plan:
    """The size of an export: ``full_orgs`` standard organizations, then maybe a smaller one.

    Attributes:
        full_orgs: standard organizations (``STD_USERS`` users, ``STD_PROJECTS`` projects).
        last: (users, projects) of the final, smaller organization, or None.
        scope: ``organizations`` or ``global``.
    """

    full_orgs: int
    last: tuple[int, int] | None
    scope: str = "organizations"

    @property
    def orgs(self) -> int:
        return self.full_orgs + (1 if self.last else 0)

    def shape(self, org: int) -> tuple[int, int]:
        """(users, projects) of organization ``org`` (0-based)."""
        if org < self.full_orgs:
            return STD_USERS, STD_PROJECTS
        assert self.last is not None and org == self.full_orgs
        return self.last

    def counts(self) -> dict[str, int]:
        """Total rows per model."""
        totals = dict(_fixed_counts())
        std = org_counts(scope=self.scope)
        last = org_counts(*self.last, scope=self.scope) if self.last else {}
        for model, n in std.items():
            totals[model] = n * self.full_orgs + last.get(model, 0)
        return totals

    @property
    def total(self) -> int:
        return sum(self.counts().values())

    def org_shapes(self) -> Iterator[OrgShape]:
        """Every organization of the export, in order."""
        for org in range(self.orgs):
            yield OrgShape.of(org, *self.shape(org))


def plan_export(rows: int, scope: str = "organizations") -> Plan:
    """Sizes an export of about ``rows`` rows.

    Standard organizations fill as much as they can; the remainder becomes one smaller
    organization whose (users, projects) brings the total closest to ``rows``.
    """
    if scope not in GEN_SCOPES:
        raise ValueError(f"scope must be one of {GEN_SCOPES}, got {scope!r}")
    fixed = sum(_fixed_counts().values())
    std = sum(org_counts(scope=scope).values())
    budget = max(0, rows - fixed)
    full, rest = divmod(budget, std)
    if rest == 0:
        return Plan(full, None, scope)
    best: tuple[int, tuple[int, int] | None] = (rest, None)  # (distance, shape)
    for users in range(1, STD_USERS + 1):
        for projects in range(1, STD_PROJECTS + 1):
            size = sum(org_counts(users, projects, scope).values())
            if abs(size - rest) < best[0]:
                best = (abs(size - rest), (users, projects))
    if best[1] == (STD_USERS, STD_PROJECTS):
        return Plan(full + 1, None, scope)
    return Plan(full, best[1], scope)


# -- writing ----------------------------------------------------------------------------------


def _export_models(scope: str) -> list[str]:
    """The generated models, in the registry's (Sentry's export) order."""
    from relocate.schemas.registry import Registry

    wanted = set(org_counts(scope=scope)) | set(_fixed_counts())
    return [m.name for m in Registry.load().models if m.name in wanted]


def iter_rows(plan: Plan, seed: int = 0) -> Iterator[str]:
    """Every row of the export as compact JSON text, in export order."""
    tables = SeedTables(seed)
    for model in _export_models(plan.scope):
        entry = _compiled(model)
        orgs = (_EXPORT_ORG,) if entry.model.once else plan.org_shapes()
        yield from entry.rows(orgs, random.Random(f"{seed}:{model}"), tables)


def _chunks(rows: Iterable[str], size: int = _CHUNK_ROWS) -> Iterator[list[str]]:
    it = iter(rows)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _write_array(out: BinaryIO, chunks: Iterable[list[str]]) -> int:
    """Writes rows as a JSON array, one row per line; returns the row count."""
    n = 0
    out.write(b"[\n")
    for chunk in chunks:
        if n:
            out.write(b",\n")
        out.write(",\n".join(chunk).encode("utf-8"))
        n += len(chunk)
    out.write(b"\n]\n")
    return n


def _shuffled_chunks(
    rows: Iterable[str], total: int, seed: int, tmp_dir: str | None
) -> Iterator[list[str]]:
    """A bounded-memory shuffle: scatter to bucket files at random, shuffle each bucket."""
    buckets = min(_MAX_BUCKETS, max(1, math.ceil(total / _BUCKET_ROWS)))
    rng = random.Random(f"{seed}:shuffle")
    pick = rng.random
    with tempfile.TemporaryDirectory(prefix="relocate-generate-", dir=tmp_dir) as tmp:
        paths = [Path(tmp, f"bucket-{b:04d}") for b in range(buckets)]
        files = [p.open("w", encoding="utf-8", buffering=1 << 16) for p in paths]
        try:
            pending: list[list[str]] = [[] for _ in range(buckets)]
            for row in rows:
                b = int(pick() * buckets)
                bucket = pending[b]
                bucket.append(row)
                if len(bucket) >= 512:
                    files[b].write("\n".join(bucket) + "\n")
                    bucket.clear()
            for b, bucket in enumerate(pending):
                if bucket:
                    files[b].write("\n".join(bucket) + "\n")
        finally:
            for f in files:
                f.close()
        for b, path in enumerate(paths):
            lines = path.read_text("utf-8").splitlines()
            path.unlink()
            random.Random(f"{seed}:shuffle:{b}").shuffle(lines)
            yield from _chunks(lines)


@dataclass(frozen=True)
class GenerateResult:
    """What ``generate`` wrote."""

    rows: int
    orgs: int
    seconds: float


def generate(
    out: BinaryIO,
    rows: int,
    seed: int = 0,
    scope: str = "organizations",
    shuffle: bool = False,
    tmp_dir: str | None = None,
) -> GenerateResult:
    """Writes a synthetic export of about ``rows`` rows to the binary stream ``out``.

    Args:
        out: where the JSON array goes (a file opened ``wb``, or ``sys.stdout.buffer``).
        rows: the wanted total row count.
        seed: the same seed gives the same bytes.
        scope: ``organizations``, or ``global`` to add Global-scope models.
        shuffle: write the rows in a random (seeded) order instead of export order.
        tmp_dir: where the shuffle's bucket files go (default: the system's temp dir).
    """
    start = time.perf_counter()
    plan = plan_export(rows, scope)
    stream = iter_rows(plan, seed)
    if shuffle:
        written = _write_array(out, _shuffled_chunks(stream, plan.total, seed, tmp_dir))
    else:
        written = _write_array(out, _chunks(stream))
    out.flush()
    return GenerateResult(written, plan.orgs, time.perf_counter() - start)
