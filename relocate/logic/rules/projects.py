"""Rules of the models under a project: what Sentry's ORM adds to them on import.

* A new project gets the options its ``post_save`` receivers write; imported options of
  the same key are saved onto them (``ProjectOption`` is get-or-create by project and key).
* A project key without a label gets a petname label (``ProjectKey.save``).
* Query subscriptions are not imported as exported: Sentry re-creates each one, to be
  registered with Snuba (status CREATING, no Snuba subscription id).
* Monitors always get a new guid; incidents with a detection uuid get a new one.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

from relocate.db.handler import (
    Handler,
    Item,
    SetBasedRules,
    WriteContext,
    copy_rows,
    index_lookup,
    insert_side_effects,
    note_change,
    split_onto_existing,
    update_rows,
)
from relocate.db.sql_literals import array_literal
from relocate.logic.rules.tokens import fresh_key

#: ``sentry:option-epoch`` of a new project: Sentry's ``LATEST_EPOCH``
#: (src/sentry/projectoptions/defaults.py). 12 is the value of the 24.x releases (the
#: 24.7.0 release snapshot holds 12 for every project); later releases moved to 13.
LATEST_EPOCH = 12
#: QuerySubscription.Status.CREATING (src/sentry/snuba/models.py).
SUBSCRIPTION_CREATING = 1

#: Words of the labels ``petname.generate(2, " ", letters=10).title()`` gives project keys
#: without one (Sentry uses the ``petname`` package's lists; these are a few of the same
#: kind: an adjective and an animal, at most 10 letters each).
PETNAME_ADJECTIVES = (
    "able", "active", "amazed", "amused", "bold", "brave", "bright", "calm", "capital",
    "careful", "clever", "cosmic", "cuddly", "daring", "eager", "equal", "fair", "famous",
    "fancy", "fine", "fluent", "frank", "gentle", "glad", "golden", "happy", "helpful",
    "honest", "humble", "immune", "intent", "jolly", "keen", "kind", "lenient", "loving",
    "lucky", "magical", "merry", "modest", "noble", "polite", "proper", "quick", "quiet",
    "rapid", "ready", "renewed", "secure", "sharp", "smart", "solid", "steady", "super",
    "sure", "tender", "tidy", "topical", "trusty", "upward", "usable", "valid", "vocal",
    "warm", "wise", "witty",
)  # fmt: skip
PETNAME_ANIMALS = (
    "alpaca", "badger", "beagle", "bear", "beetle", "bison", "bobcat", "buffalo", "camel",
    "cardinal", "catfish", "cheetah", "chimp", "cobra", "condor", "corgi", "coyote",
    "crawfish", "crow", "dingo", "dolphin", "donkey", "eagle", "egret", "falcon", "ferret",
    "finch", "gazelle", "gecko", "gopher", "grouse", "gull", "hamster", "hare", "hawk",
    "heron", "ibex", "iguana", "impala", "jackal", "jaguar", "kite", "koala", "lemur",
    "lion", "lizard", "llama", "lobster", "lynx", "marlin", "marmot", "mole", "moose",
    "newt", "ocelot", "orca", "osprey", "otter", "owl", "panda", "parrot", "pelican",
    "penguin", "pigeon", "puffin", "quail", "rabbit", "raven", "robin", "salmon", "seal",
    "shark", "sloth", "snail", "squid", "stork", "swan", "tapir", "tiger", "toad", "trout",
    "turtle", "walrus", "weasel", "whale", "wombat", "yak", "zebra",
)  # fmt: skip


def petname_label() -> str:
    """A label like Sentry's ``petname.generate(2, " ", letters=10).title()``."""
    return f"{secrets.choice(PETNAME_ADJECTIVES)} {secrets.choice(PETNAME_ANIMALS)}".title()


def project_default_options(now: Any) -> list[tuple[str, str]]:
    """The options a new project's receivers write: (key, value as the column holds it).

    ``freeze_option_epoch_for_project`` (src/sentry/receivers/core.py) sets
    ``sentry:option-epoch``; each option set runs ``update_rev_for_option``
    (src/sentry/projectoptions/manager.py), which writes ``sentry:relay-rev`` (a uuid4 hex)
    and ``sentry:relay-rev-lastchange`` (now). Values are JSON text, as exports hold them.
    """
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return [
        ("sentry:relay-rev", json.dumps(uuid.uuid4().hex)),
        ("sentry:relay-rev-lastchange", json.dumps(stamp)),
        ("sentry:option-epoch", json.dumps(LATEST_EPOCH)),
    ]


def _set_if_column(ctx: WriteContext, values: dict[str, Any], column: str, value: Any) -> None:
    """Sets a column the target has (an older target may lack it)."""
    if ctx.layout.column(column) is not None:
        values[column] = value


class ProjectHandler(Handler):
    """``sentry.project``: inserted with the options its ``post_save`` receivers write."""

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        copy_rows(ctx, items)
        rows = [
            (i.new_pk, key, value) for i in items for key, value in project_default_options(ctx.now)
        ]
        if rows:
            insert_side_effects(
                ctx,
                "INSERT INTO sentry_projectoptions (project_id, key, value) "
                "SELECT p, k, v FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS t(p, k, v)",
                tuple(array_literal(column) for column in zip(*rows)),
                "sentry_projectoptions",
            )


class ProjectOptionHandler(Handler):
    """``sentry.projectoption``: get-or-create by (project, key), then the imported value.

    ``ProjectOption.write_relocation_import`` (src/sentry/models/options/project_option.py)
    finds the option the project's receivers wrote and saves the imported row onto it
    (reported Inserted); two rows of one (project, key) end as one, the later value kept.
    """

    resolves_uniques = (frozenset({"project_id", "key"}),)
    # Every project the import writes holds `sentry:option-epoch` (ProjectHandler), which
    # exports carry too, so nearly every batch lands a row on one: the set-based path
    # saves such rows onto it, as this rule does (a batch repeating a key goes row by row).
    set_based = SetBasedRules(onto_key=("project_id", "key"), onto_columns=("value",))

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        pairs = [(i.values.get("project_id"), i.values.get("key")) for i in items]
        existing = {
            (p, k): row_id
            for row_id, p, k in index_lookup(
                ctx.cur,
                "SELECT o.id, t.p, t.k FROM unnest(%s::bigint[], %s::text[]) AS t(p, k) "
                "CROSS JOIN LATERAL (SELECT o.id FROM sentry_projectoptions o "
                "WHERE o.project_id = t.p AND o.key = t.k LIMIT 1) AS o",
                (array_literal(p for p, _ in pairs), array_literal(k for _, k in pairs)),
            )
        }
        new, onto = split_onto_existing(items, pairs, existing)
        copy_rows(ctx, new)
        update_rows(ctx, [(i.new_pk, {"value": i.values.get("value")}) for i in onto])


class ProjectKeyHandler(Handler):
    """``sentry.projectkey``: empty or colliding public/secret keys are regenerated; an
    empty label becomes a petname (``ProjectKey.save``, src/sentry/models/projectkey.py).

    Sentry merges imported keys into the default key its ORM creates with a project
    (so a second key of one project overwrites the first); relocate creates no default
    keys, so every exported key stays its own row.
    """

    resolves_uniques = (frozenset({"public_key"}), frozenset({"secret_key"}))

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        for column in ("public_key", "secret_key"):
            value = item.values.get(column)
            if not value or not ctx.is_free(column, value):
                why = f"the {column} is taken" if value else f"the {column} is empty"
                note_change(item, column, "regenerated", why)
                value = fresh_key()
                ctx.reserve(column, value)
            item.values[column] = value
        if not item.values.get("label"):
            _set_if_column(ctx, item.values, "label", petname_label())


class QuerySubscriptionHandler(Handler):
    """``sentry.querysubscription``: re-created, to be registered with Snuba.

    ``QuerySubscription.write_relocation_import`` (src/sentry/snuba/models.py) discards
    the row and calls ``create_snuba_subscription(project, type, snuba_query)``
    (src/sentry/snuba/subscriptions.py): status CREATING, no Snuba ``subscription_id``, no
    ``query_extra``, ``date_updated`` now; only ``date_added`` is kept. Sentry's
    ``subscription_checker`` task (src/sentry/snuba/tasks.py) registers the subscriptions
    left in CREATING for more than 10 minutes.
    """

    resolves_uniques = (frozenset({"subscription_id"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        values = item.values
        values["status"] = SUBSCRIPTION_CREATING
        values["subscription_id"] = None
        _set_if_column(ctx, values, "query_extra", None)
        _set_if_column(ctx, values, "date_updated", ctx.now)


class MonitorHandler(Handler):
    """``sentry.monitor``: always a new guid (``Monitor.normalize_before_relocation_import``,
    src/sentry/monitors/models.py)."""

    resolves_uniques = (frozenset({"guid"}),)

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        item.values["guid"] = str(uuid.uuid4())
        note_change(item, "guid", "regenerated", "Sentry gives every imported monitor a new guid")


class IncidentHandler(Handler):
    """``sentry.incident``: a set ``detection_uuid`` is replaced by a new one
    (``Incident.normalize_before_relocation_import``, src/sentry/incidents/models/incident.py)."""

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        if item.values.get("detection_uuid"):
            item.values["detection_uuid"] = str(uuid.uuid4())
            note_change(
                item,
                "detection_uuid",
                "regenerated",
                "Sentry gives every imported incident a new detection uuid",
            )


def project_handlers() -> dict[str, Handler]:
    return {
        "sentry.project": ProjectHandler(),
        "sentry.projectoption": ProjectOptionHandler(),
        "sentry.projectkey": ProjectKeyHandler(),
        "sentry.querysubscription": QuerySubscriptionHandler(),
        "sentry.monitor": MonitorHandler(),
        "sentry.incident": IncidentHandler(),
    }
