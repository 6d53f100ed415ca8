"""What ``relocate verify`` expects of one exported row: pure functions, no database.

An exported row is converted with the import's own code (``convert_row``), so the expected
column values are exactly what the import handed to the database before Sentry's rules ran;
foreign keys are then rewritten through the ledger by the caller. The rules change some
fields on purpose (renames, regenerated secrets, sanitisation, dates set to now): those are
listed, with the reason, in ``EXEMPT``, and compared only to be counted, never failed.
"""

from __future__ import annotations

import ipaddress
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from relocate.io.export_reader import Row
from relocate.logic.admission import LEGACY_OWNER_FIELDS, natural_user_key, user_fk_fields
from relocate.logic.convert import Converted, TableLayout, convert_row
from relocate.schemas.registry import ModelInfo

_RENAMED = "renamed on a collision (Sentry's unique_db_instance suffix scheme)"
_NOW = "set to the time of the import"
_REGENERATED = "regenerated when it collides with a row already in the target"
_SANITISED_SCOPE = "sanitised outside the Global scope"

#: model -> {target column: why the import may store another value than the export's}.
#: Keyed by column (what is compared), taken from ``relocate/logic/rules/`` and
#: ``relocate/logic/admission.py``. A field listed here is still compared: a difference
#: is counted as "exempt", never as a mismatch.
EXEMPT: dict[str, dict[str, str]] = {
    "sentry.user": {
        "username": _RENAMED + "; case-only collisions count (rules/users.py)",
        "password": "unclaimed users get an unusable password outside Global (rules/users.py)",
        "is_unclaimed": "set for every user outside Global (rules/users.py)",
        "last_password_change": _NOW + " with the unusable password (rules/users.py)",
        "is_password_expired": "cleared with the unusable password (rules/users.py)",
        "is_staff": "cleared in the users and organizations scopes (rules/users.py)",
        "is_superuser": "cleared in the users and organizations scopes (rules/users.py)",
        "is_managed": "cleared in the users and organizations scopes (rules/users.py)",
    },
    "sentry.useremail": {
        "is_verified": "verification reset " + _SANITISED_SCOPE + " (rules/users.py)",
        "validation_hash": "new hash " + _SANITISED_SCOPE + " (rules/users.py)",
        "date_hash_added": _NOW + " " + _SANITISED_SCOPE + " (rules/users.py)",
    },
    "sentry.userip": {
        "country_code": "looked up in the GeoIP database, --geoip-db (rules/users.py)",
        "region_code": "looked up in the GeoIP database, --geoip-db (rules/users.py)",
        "first_seen": _NOW + " outside Global (rules/users.py)",
        "last_seen": _NOW + " outside Global (rules/users.py)",
    },
    "sentry.organization": {
        "slug": "normalised (slugify, 30 characters, reserved slugs) and " + _RENAMED,
    },
    "sentry.organizationmember": {"token": _REGENERATED + " (rules/orgs.py)"},
    "sentry.orgauthtoken": {
        "token_hashed": "a new token for the final slug when empty or colliding (rules/orgs.py)",
        "token_last_characters": "follows the new token (rules/orgs.py)",
    },
    "sentry.servicehook": {"guid": _REGENERATED + " (rules/orgs.py)"},
    "sentry.sentryappcomponent": {"uuid": _REGENERATED + " (rules/orgs.py)"},
    "sentry.apikey": {"key": _REGENERATED + " (rules/orgs.py)"},
    "sentry.apiapplication": {"client_id": _REGENERATED + " (rules/orgs.py)"},
    "sentry.apitoken": {
        "token": _REGENERATED + ", token or hash (rules/tokens.py)",
        "hashed_token": "follows the new token (rules/tokens.py)",
        "refresh_token": _REGENERATED + ", token or hash (rules/tokens.py)",
        "hashed_refresh_token": "follows the new refresh token (rules/tokens.py)",
        "token_last_characters": "follows the new token (rules/tokens.py)",
        "expires_at": "30 days from now for a regenerated token (rules/config.py)",
    },
    "sentry.projectkey": {
        "public_key": _REGENERATED + ", or when empty (rules/projects.py)",
        "secret_key": _REGENERATED + ", or when empty (rules/projects.py)",
        "label": "a petname label when empty (rules/projects.py)",
    },
    "sentry.querysubscription": {
        "status": "re-created as CREATING, to be registered with Snuba (rules/projects.py)",
        "subscription_id": "re-created without a Snuba subscription (rules/projects.py)",
        "query_extra": "re-created without it (rules/projects.py)",
        "date_updated": _NOW + " (rules/projects.py)",
    },
    "sentry.monitor": {"guid": "always a new guid (rules/projects.py)"},
    "sentry.incident": {"detection_uuid": "a set one is replaced (rules/projects.py)"},
}

#: Why columns are left out of one row's comparison (not a table: they depend on the row).
LEGACY_OWNER = "a legacy `owner` actor, resolved by the import from the export's actors"
NATURAL_KEY = "a 23.7 natural-key user reference, resolved from the export's usernames"


class Expected:
    """One exported row as the import converted it, before foreign keys are rewritten.

    Attributes:
        row: the exported row.
        converted: its converted values (None when the row does not convert: ``problem``).
        unchecked: columns left out of this row's comparison, with why.
        problem: why the row does not convert (the import would have made it a finding).
    """

    __slots__ = ("converted", "problem", "row", "unchecked")

    def __init__(
        self,
        row: Row,
        converted: Converted | None,
        unchecked: dict[str, str],
        problem: str | None = None,
    ) -> None:
        self.row = row
        self.converted = converted
        self.unchecked = unchecked
        self.problem = problem


def expect(row: Row, layout: TableLayout, model: ModelInfo) -> Expected:
    """Converts one exported row as the import does, noting the columns that the import
    resolved from other rows of the export (which verify, reading once, does not hold).

    Legacy owners: a row of ``sentry.alertrule`` or ``sentry.rule`` naming an ``owner`` and
    neither owner column takes its owner from a ``sentry.actor`` row. Natural keys: a 23.7
    export names users as ``["username"]``; the import resolves them against the export's
    users. Both columns are left unchecked for that row.
    """
    fields = row.fields
    unchecked: dict[str, str] = {}
    by_field = layout.by_field
    owners = LEGACY_OWNER_FIELDS.get(row.model)
    if (
        owners is not None
        and fields.get("owner") is not None
        and all(fields.get(f) is None for f in owners)
    ):
        for field in owners:
            if field in by_field:
                unchecked[by_field[field].column] = LEGACY_OWNER
    natural = [f for f in user_fk_fields(model) if natural_user_key(fields.get(f)) is not None]
    if natural:
        fields = {k: v for k, v in fields.items() if k not in natural}
        for field in natural:
            if field in by_field:
                unchecked[by_field[field].column] = NATURAL_KEY
        row = row._replace(fields=fields)
    try:
        converted = convert_row(row, layout)
    except ValueError as exc:  # RowInvalid: the import made the row a finding
        return Expected(row, None, unchecked, str(exc))
    return Expected(row, converted, unchecked)


def same_value(expected: Any, found: Any, kind: str) -> bool:
    """Whether a stored value is the exported one, as the column kind reads it.

    ``expected`` is what ``coerce`` made of the exported value (text for datetimes, dates,
    uuids and addresses); ``found`` is what psycopg read back from the column.
    """
    if expected is None or found is None:
        return expected is None and found is None
    try:
        if kind.startswith("array:"):
            element = kind[6:]
            return (
                isinstance(found, list)
                and len(found) == len(expected)
                and all(
                    same_value(e, f, kind if isinstance(e, list) else element)
                    for e, f in zip(expected, found)
                )
            )
        if kind == "timestamp" and isinstance(found, datetime):
            wanted = datetime.fromisoformat(str(expected).replace(" ", "T", 1))
            if wanted.tzinfo is None or found.tzinfo is None:
                # Naive on one side: PostgreSQL read it in the session's time zone, which
                # psycopg's aware datetimes are given in (or the column drops the offset).
                return wanted.replace(tzinfo=None) == found.replace(tzinfo=None)
            return wanted == found
        if kind == "date" and isinstance(found, date):
            return date.fromisoformat(str(expected)[:10]) == found
        if kind == "uuid":
            return uuid.UUID(str(expected)) == uuid.UUID(str(found))
        if kind == "inet":
            return ipaddress.ip_interface(str(expected)) == ipaddress.ip_interface(str(found))
        if kind == "float":
            if isinstance(found, Decimal):
                return Decimal(str(expected)) == found
            return float(expected) == float(found)
        if kind == "json":
            return same_json(expected, found)
    except (ValueError, TypeError, ArithmeticError):
        return False
    return expected == found


def same_json(expected: Any, found: Any) -> bool:
    """JSON equality as JSON sees it: numbers by value (jsonb may print ``1e2`` as
    ``100``), but a boolean is no number (Python's ``True == 1`` would hide a change)."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if isinstance(expected, dict):
        return (
            isinstance(found, dict)
            and expected.keys() == found.keys()
            and all(same_json(v, found[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(found, list)
            and len(expected) == len(found)
            and all(same_json(e, f) for e, f in zip(expected, found))
        )
    if isinstance(expected, str) or isinstance(found, str):
        return isinstance(expected, str) and isinstance(found, str) and expected == found
    return expected == found  # numbers by value; None
