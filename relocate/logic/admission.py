"""Admission: which rows of an export an import takes (spec sections 3.2-3.4).

Pure functions. A row is admitted when its model is a relocatable model of the registry,
its scope (decided per row for the models that have a scope set) is in the import scope,
and it passes the user/organization filters. Everything else is skipped with a reason:
unlike Sentry, which skips silently, relocate reports every skipped row.

Every value admission reads (a scope field, a filtered username, slug or address, a legacy
``owner`` and its actor) is checked for its shape first: a list or an object where a scalar
belongs raises ``RowInvalid``, a ValidationError finding naming the row. The pre-scans that
build the allow-lists pass over such values instead (the row itself is then a finding).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from relocate.io.export_reader import Row
from relocate.logic.convert import RowInvalid
from relocate.logic.settings import ImportSettings
from relocate.logic.values import ValueProblem, coerce
from relocate.schemas.registry import ModelInfo, Registry

#: Django apps whose models are never imported (spec 3.2).
EXCLUDED_APPS = frozenset({"auth", "contenttypes", "fixtures", "sessions", "sites"})


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def text_field(fields: dict[str, Any], field: str) -> str | None:
    """A field admission reads as text: a string or null.

    Raises:
        RowInvalid: any other value (a list, an object, a number).
    """
    value = fields.get(field)
    if value is None or isinstance(value, str):
        return value
    raise RowInvalid(f"field `{field}`: expected a string, got {_short(value)}")


def int_field(fields: dict[str, Any], field: str) -> int | None:
    """A field admission reads as an integer (a pk), accepted as the column accepts it.

    Raises:
        RowInvalid: a value no integer column takes (a list, an object, ``"x"``).
    """
    try:
        return coerce(fields.get(field), "int:bigint")
    except ValueProblem as exc:
        raise RowInvalid(f"field `{field}`: {exc}") from None


def bool_field(fields: dict[str, Any], field: str) -> bool | None:
    """A field admission reads as a boolean, accepted as the column accepts it.

    Raises:
        RowInvalid: a value no boolean column takes.
    """
    try:
        return coerce(fields.get(field), "bool")
    except ValueProblem as exc:
        raise RowInvalid(f"field `{field}`: {exc}") from None


def _lenient(read: Any, fields: dict[str, Any], field: str) -> Any:
    """``read(fields, field)``, or None for a value of the wrong shape (pre-scans only:
    Admit makes the row itself a finding)."""
    try:
        return read(fields, field)
    except RowInvalid:
        return None


def row_scope(model: ModelInfo, fields: dict[str, Any]) -> str:
    """The relocation scope of one row (spec 3.4).

    Models with a single scope return it; models with a scope set decide from the row.

    Raises:
        RowInvalid: a field that decides the scope has the wrong shape.
    """
    name = model.name
    if name in ("sentry.apitoken", "sentry.apiauthorization"):
        return "Global" if int_field(fields, "application") is not None else "Config"
    if name == "sentry.notificationaction":
        targets_integration = int_field(fields, "integration_id") is not None
        targets_app = int_field(fields, "sentry_app_id") is not None
        return "Global" if targets_integration or targets_app else "Organization"
    if name == "sentry.savedsearch":
        return "Global" if bool_field(fields, "is_global") else "Organization"
    if len(model.scopes) == 1:
        return model.scopes[0]
    # A scope set without a rule of its own (notificationactionproject follows its
    # action, which the FK rewrite enforces): the narrowest non-Global scope.
    return next((s for s in model.scopes if s != "Global"), model.scopes[0])


@dataclass(frozen=True)
class Filters:
    """The allow-lists of one import, resolved against the export's own rows.

    Attributes:
        usernames: ``sentry.user`` rows must have one of these usernames.
        user_pks: ``sentry.user`` rows must have one of these source pks (org filter).
        org_slugs: ``sentry.organization`` rows must have one of these slugs.
        emails: ``sentry.email`` rows must have one of these addresses.
    """

    usernames: frozenset[str] | None = None
    user_pks: frozenset[int] | None = None
    org_slugs: frozenset[str] | None = None
    emails: frozenset[str] | None = None


def skip_reason(
    row: Row,
    registry: Registry,
    settings: ImportSettings,
    filters: Filters,
    removed_models: frozenset[str] = frozenset(),
) -> str | None:
    """Returns why the row is skipped, or None when it is admitted.

    Raises:
        RowInvalid: a value it reads has the wrong shape (a ValidationError finding).
    """
    model = registry.get(row.model)
    if model is None:
        app = row.model.split(".", 1)[0]
        if app in EXCLUDED_APPS:
            return f"model of the excluded app `{app}`"
        if row.model in removed_models:
            return "model removed from Sentry; its rows are not imported"
        if row.model in registry.excluded_names:
            return "model excluded from relocation"
        return "unknown model"
    scope = row_scope(model, row.fields)
    if scope not in settings.relocation_scopes:
        return f"{scope} scope is not imported by `import {settings.scope}`"
    fields = row.fields
    # The fields the filters read are checked whether or not a filter is given, so that
    # an export is valid or not whatever the flags.
    if row.model == "sentry.user":
        username = text_field(fields, "username")
        text_field(fields, "email")  # read by the email allow-list
        if filters.usernames is not None and username not in filters.usernames:
            return "username not in the username filter"
        if filters.user_pks is not None and row.pk not in filters.user_pks:
            return "user is not a member of a filtered organization"
    elif row.model == "sentry.organization":
        slug = text_field(fields, "slug")
        if filters.org_slugs is not None and slug not in filters.org_slugs:
            return "organization slug not in the organization filter"
    elif row.model == "sentry.email":
        address = text_field(fields, "email")
        if filters.emails is not None and address not in filters.emails:
            return "email of no imported user"
    return None


# Pre-scans for the filters. Each takes rows of one model (the pipeline feeds them from
# the parsed rows, whatever their order in the file) and returns an allow-list.


def org_pks_with_slugs(org_rows: Iterable[Row], slugs: frozenset[str]) -> frozenset[int]:
    """Source pks of the organizations whose slug is listed."""
    return frozenset(r.pk for r in org_rows if _lenient(text_field, r.fields, "slug") in slugs)


def member_user_pk(member: Row, org_pks: frozenset[int]) -> int | None:
    """The user of a membership of a listed organization (None for invitees)."""
    if _lenient(int_field, member.fields, "organization") in org_pks:
        return _lenient(int_field, member.fields, "user_id")
    return None


def user_email_if_selected(user: Row, filters: Filters) -> str | None:
    """The email of a user row that passes the user filters."""
    username = _lenient(text_field, user.fields, "username")
    if filters.usernames is not None and username not in filters.usernames:
        return None
    if filters.user_pks is not None and user.pk not in filters.user_pks:
        return None
    return _lenient(text_field, user.fields, "email")


#: Legacy ``owner`` (an Actor pk) -> the owner columns of each model (spec 6.7, test 41).
LEGACY_OWNER_FIELDS = {
    "sentry.alertrule": ("user_id", "team"),
    "sentry.rule": ("owner_user_id", "owner_team"),
}


def actor_owner(actor: Row) -> tuple[Any, Any]:
    """(user pk, team pk) of a legacy ``sentry.actor`` row, as exported (the rows that
    name the actor check their shape: the actor itself is never imported)."""
    fields = actor.fields
    team = fields.get("team", fields.get("team_id"))
    return fields.get("user_id"), team


def has_legacy_owner(row: Row) -> bool:
    """Whether ``resolve_legacy_owner`` has anything to do with ``row``: a model with a
    legacy owner, and an ``owner`` set (Sentry's exports since 23.9 have none)."""
    return row.model in LEGACY_OWNER_FIELDS and row.fields.get("owner") is not None


def _actor_pk(owner: int, field: str, value: Any) -> int | None:
    try:
        return coerce(value, "int:bigint")
    except ValueProblem as exc:
        raise RowInvalid(
            f"field `owner`: actor {owner} has a `{field}` that is not a pk ({exc})"
        ) from None


def resolve_legacy_owner(row: Row, actors: dict[Any, tuple[Any, Any]]) -> Row:
    """Translates an old export's ``owner`` actor into user/team owner fields.

    Rows with an owner whose actor is in the export get its user or team (unless they
    already name one); other rows keep no owner. The ``owner`` field itself is removed
    from the schema and is ignored afterwards.

    Raises:
        RowInvalid: the ``owner``, or the user or team of its actor, is not an integer.
    """
    targets = LEGACY_OWNER_FIELDS.get(row.model)
    if targets is None:
        return row
    owner = int_field(row.fields, "owner")
    if owner is None:
        return row
    user_field, team_field = targets
    if row.fields.get(user_field) is not None or row.fields.get(team_field) is not None:
        return row
    resolved = actors.get(owner)
    if resolved is None:
        return row
    user_pk = _actor_pk(owner, "user_id", resolved[0])
    team_pk = _actor_pk(owner, "team", resolved[1])
    fields = dict(row.fields)
    if user_pk is not None:
        fields[user_field] = user_pk
    elif team_pk is not None:
        fields[team_field] = team_pk
    return row._replace(fields=fields)


# Legacy (23.7.x) exports: users named by natural key. The old ``sentry export`` serialised
# with ``use_natural_foreign_keys=True``, so a foreign key to ``sentry.user`` holds Django's
# ``User.natural_key()``, ``[username]`` (``AbstractBaseUser``; src/sentry/users/models/
# user.py keeps Django's ``USERNAME_FIELD = "username"``). They are resolved against the
# usernames of the export's own ``sentry.user`` rows (a small side input), before the
# row's columns are converted.


def user_fk_fields(model: ModelInfo) -> tuple[str, ...]:
    """The export fields of ``model`` that are foreign keys to ``sentry.user``."""
    return tuple(fk.field for fk in model.foreign_keys if fk.target == "sentry.user")


def natural_user_key(value: Any) -> str | None:
    """The username of a natural-key reference (a one-element list holding a string)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return None


def has_natural_user_refs(fields: dict[str, Any], user_fields: Iterable[str]) -> bool:
    """Whether a row names a user by natural key in one of ``user_fields``."""
    return any(natural_user_key(fields.get(f)) is not None for f in user_fields)


def username_pk(user: Row) -> tuple[str, int] | None:
    """(username, source pk) of a ``sentry.user`` row, for the natural-key side input."""
    username = user.fields.get("username")
    if isinstance(username, str) and isinstance(user.pk, int) and not isinstance(user.pk, bool):
        return username, user.pk
    return None


def first_pk_of_username(pairs: Iterable[tuple[str, int]]) -> dict[str, int]:
    """username -> the lowest source pk of the export's users with that name, from the
    ``username_pk`` pairs of the export's users."""
    first: dict[str, int] = {}
    for username, pk in pairs:
        if username not in first or pk < first[username]:
            first[username] = pk
    return first


def resolve_natural_user_refs(
    row: Row, user_fields: Iterable[str], usernames: Mapping[str, int]
) -> Row:
    """Replaces natural-key user references by the source pk of the export's user.

    The match is exact, as Django's ``get_by_natural_key`` (``username=``) is.

    Raises:
        RowInvalid: a username that no ``sentry.user`` row of the export has.
    """
    fields = row.fields
    resolved: dict[str, int] = {}
    for field in user_fields:
        username = natural_user_key(fields.get(field))
        if username is None:
            continue
        pk = usernames.get(username)
        if pk is None:
            raise RowInvalid(
                f"field `{field}` names user {username[:100]!r} by username (a 23.7 export's "
                "natural key), and no sentry.user of the export has that username"
            )
        resolved[field] = pk
    if not resolved:
        return row
    return row._replace(fields={**fields, **resolved})
