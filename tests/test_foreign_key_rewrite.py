"""Foreign keys rewritten from source pks to the ledger's new pks, or the row dropped."""

from __future__ import annotations

import pytest

from relocate.db.handler import (
    Handler,
    Item,
    LedgerEntry,
    RowDropped,
    WriteContext,
    ledger_refs,
    rewrite_foreign_keys,
)
from relocate.logic.convert import Converted, TableLayout
from relocate.schemas.registry import ForeignKey


def _fk(field: str, target: str, excluded: bool = False) -> tuple[str, ForeignKey]:
    column = f"{field}_id"
    return column, ForeignKey(field, column, target, True, "FlexibleForeignKey", excluded)


LAYOUT = TableLayout(
    model="sentry.thing",
    table="sentry_thing",
    columns=(),
    foreign_keys=(
        _fk("project", "sentry.project"),
        _fk("user", "sentry.user"),
        _fk("actor", "sentry.actor", excluded=True),
        _fk("parent", "sentry.thing"),
    ),
    id_sequence="sentry_thing_id_seq",
    self_references=("parent_id",),
)
LOOKUP = {
    ("sentry.project", 7): LedgerEntry(70, "Inserted"),
    ("sentry.user", 1): LedgerEntry(10, "Existing"),
}


class _NullsUser(Handler):
    null_when_missing = frozenset({"user_id"})


def _rewrite(values: dict, handler: Handler | None = None) -> dict:
    ctx = WriteContext(None, None, None, None, LAYOUT, LOOKUP, {})  # type: ignore[arg-type]
    item = Item(1, 1, dict(values))
    rewrite_foreign_keys(ctx, item, handler or Handler())
    return item.values


def test_keys_become_the_new_pks_and_self_references_wait_for_the_fix_up():
    assert _rewrite({"project_id": 7, "user_id": 1, "parent_id": 3, "name": "x"}) == {
        "project_id": 70,
        "user_id": 10,
        "parent_id": 3,
        "name": "x",
    }
    assert _rewrite({"project_id": None, "user_id": 1}) == {"project_id": None, "user_id": 10}


def test_a_key_whose_target_was_not_imported_drops_the_row_or_is_nulled():
    with pytest.raises(RowDropped, match=r"`project` points at sentry.project pk 8, which was not"):
        _rewrite({"project_id": 8})
    with pytest.raises(RowDropped, match="`actor` points at sentry.actor pk 1, which is excluded"):
        _rewrite({"actor_id": 1})
    assert _rewrite({"project_id": 7, "user_id": 2}, _NullsUser()) == {
        "project_id": 70,
        "user_id": None,
    }


def test_only_an_int_is_a_pk():
    # True == 1 in Python: a bool must not find user pk 1's entry, nor a text pk.
    for value in (True, "1", 1.0):
        with pytest.raises(RowDropped, match="was not imported"):
            _rewrite({"user_id": value})
    rows = [
        Converted("sentry.thing", 1, 1, {"project_id": 7, "user_id": True, "actor_id": 5}),
        Converted("sentry.thing", 2, 2, {"project_id": "7", "user_id": 1, "parent_id": 9}),
    ]
    assert ledger_refs(LAYOUT, rows) == {
        ("sentry.project", 7),
        ("sentry.user", 1),
        ("sentry.thing", 9),
    }
