"""Sentry's replica rows: the copies its outboxes write of imported rows.

In Sentry an imported ApiToken, ApiKey, OrgAuthToken, AuthProvider, AuthIdentity or
OrganizationSlugReservation (control side) is copied into a region-side replica table, and
an imported Team or OrganizationMemberTeam into a control-side one, by the outbox handlers
of ``src/sentry/hybridcloud/services/replica/impl.py``. In a monolith both sides share the
database, and region code (API authentication, SSO, member-team lookups) reads the
replicas, so relocate writes them in the batch that writes their source rows.

A replica row is derived in SQL from its source row just written (``INSERT ... SELECT``),
with the values Sentry's ``upsert_replicated_*`` methods give it, and only for the columns
the target's replica table has: a target without a replica table (an older Sentry) gets
none, and the columns of a newer Sentry that relocate does not know are left to their
defaults. Replica rows are side effects of the import (``relocate_side_effect``): a
rollback removes them, the Global wipe empties their tables. Their ``date_added`` is the
replication time, as in Sentry.

Every SQL fragment here is a constant of this module; table and column names are quoted.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql

from relocate.db.handler import WriteContext, insert_side_effects, under_nested_loops
from relocate.db.sql_literals import bigint_array

log = logging.getLogger("relocate.replicas")

#: HasApiScopes.ScopesDict in order (src/sentry/models/apiscopes.py): bit i of ``scopes``.
API_SCOPES = (
    "project:read",
    "project:write",
    "project:admin",
    "project:releases",
    "team:read",
    "team:write",
    "team:admin",
    "event:read",
    "event:write",
    "event:admin",
    "org:read",
    "org:write",
    "org:admin",
    "member:read",
    "member:write",
    "member:admin",
    "org:integrations",
    "alerts:read",
    "alerts:write",
    "member:invite",
)
_SCOPE_NAMES = "ARRAY[" + ", ".join(f"'{s}'" for s in API_SCOPES) + "]::text[]"
#: ``HasApiScopes.get_scopes()``: the scope list when it is not empty, else the names of
#: the bits set in ``scopes``.
_GET_SCOPES = (
    "CASE WHEN cardinality(s.scope_list) > 0 THEN s.scope_list ELSE ARRAY("
    f"SELECT b.n FROM unnest({_SCOPE_NAMES}) WITH ORDINALITY AS b(n, i) "
    "WHERE (s.scopes >> (b.i::int - 1)) & 1 = 1 ORDER BY b.i) END"
)


@dataclass(frozen=True)
class Column:
    """One replica column: its SQL over the source row ``s`` and the source columns read."""

    name: str
    expression: str
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Replica:
    """A replica table filled from a source table (``s``), with optional joins."""

    table: str
    source: str
    columns: tuple[Column, ...]
    joins: str = ""
    #: Tables the joins read (the replica is skipped when one is missing).
    join_tables: tuple[str, ...] = ()


def _copy(name: str, source: str | None = None) -> Column:
    source = source or name
    return Column(name, f's."{source}"', (source,))


_NOW = Column("date_added", "now()")

#: Source table -> its replica (src/sentry/hybridcloud/services/replica/impl.py).
REPLICAS: dict[str, Replica] = {
    # upsert_replicated_org_slug_reservation
    "sentry_organizationslugreservation": Replica(
        "hybridcloud_organizationslugreservationreplica",
        "sentry_organizationslugreservation",
        (
            _copy("organization_slug_reservation_id", "id"),
            _copy("slug"),
            _copy("organization_id"),
            _copy("user_id"),
            _copy("region_name"),
            _copy("reservation_type"),
            _NOW,
        ),
    ),
    # upsert_replicated_org_auth_token
    "sentry_orgauthtoken": Replica(
        "hybridcloud_orgauthtokenreplica",
        "sentry_orgauthtoken",
        (
            _copy("organization_id"),
            _copy("orgauthtoken_id", "id"),
            _copy("token_hashed"),
            _copy("name"),
            _copy("scope_list"),
            _copy("created_by_id"),
            _copy("date_deactivated"),
            _NOW,
        ),
    ),
    # upsert_replicated_api_token, from serialize_api_token (src/sentry/auth/services/auth/
    # serial.py): allowed_origins are ApiToken.get_allowed_origins(), its application's
    # (split on whitespace), joined by newlines, NULL when none; application_is_active is
    # "no application, or an active one" (ApiApplicationStatus.active = 0). The bitfield
    # ``scopes`` is not set by the upsert: it keeps its default, 0. ``organization_id`` is
    # the org of a Sentry app installation holding the token, which no imported
    # installation can be yet when its token is written: NULL.
    "sentry_apitoken": Replica(
        "hybridcloud_apitokenreplica",
        "sentry_apitoken",
        (
            _copy("application_id"),
            Column("organization_id", "NULL::bigint"),
            Column(
                "application_is_active",
                "(s.application_id IS NULL OR COALESCE(a.status = 0, false))",
                ("application_id",),
            ),
            _copy("user_id"),
            _copy("apitoken_id", "id"),
            _copy("token"),
            _copy("hashed_token"),
            _copy("expires_at"),
            Column(
                "allowed_origins",
                "NULLIF(array_to_string(ARRAY(SELECT o FROM regexp_split_to_table("
                "COALESCE(a.allowed_origins, ''), '\\s+') AS o WHERE o <> ''), E'\\n'), '')",
            ),
            Column("scope_list", _GET_SCOPES, ("scope_list", "scopes")),
            Column("scopes", "0"),
            _copy("scoping_organization_id"),
            _NOW,
        ),
        joins="LEFT JOIN sentry_apiapplication a ON a.id = s.application_id",
        join_tables=("sentry_apiapplication",),
    ),
    # upsert_replicated_api_key: "\n".join(get_allowed_origins()), get_allowed_origins
    # being the non-empty lines (so "" when there are none).
    "sentry_apikey": Replica(
        "hybridcloud_apikeyreplica",
        "sentry_apikey",
        (
            _copy("apikey_id", "id"),
            _copy("organization_id"),
            _copy("label"),
            _copy("key"),
            _copy("status"),
            Column(
                "allowed_origins",
                "array_to_string(ARRAY(SELECT o FROM unnest(string_to_array("
                "COALESCE(s.allowed_origins, ''), E'\\n')) AS o WHERE o <> ''), E'\\n')",
                ("allowed_origins",),
            ),
            Column("scope_list", _GET_SCOPES, ("scope_list", "scopes")),
            Column("scopes", "0"),
            _NOW,
        ),
    ),
    # upsert_replicated_auth_provider: AuthProvider.flags allow_unlinked (bit 0) and
    # scim_enabled (bit 1).
    "sentry_authprovider": Replica(
        "sentry_authproviderreplica",
        "sentry_authprovider",
        (
            _copy("auth_provider_id", "id"),
            _copy("organization_id"),
            _copy("provider"),
            _copy("config"),
            _copy("default_role"),
            _copy("default_global_access"),
            Column("allow_unlinked", "(s.flags & 1) <> 0", ("flags",)),
            Column("scim_enabled", "(s.flags & 2) <> 0", ("flags",)),
            _NOW,
        ),
    ),
    # upsert_replicated_auth_identity
    "sentry_authidentity": Replica(
        "sentry_authidentityreplica",
        "sentry_authidentity",
        (
            _copy("auth_identity_id", "id"),
            _copy("user_id"),
            _copy("auth_provider_id"),
            _copy("ident"),
            _copy("data"),
            _copy("last_verified"),
            _NOW,
        ),
    ),
    # upsert_replicated_organization_member_team: the organization is the member's.
    "sentry_organizationmember_teams": Replica(
        "sentry_organizationmember_teamsreplica",
        "sentry_organizationmember_teams",
        (
            _copy("team_id"),
            Column("organization_id", "m.organization_id"),
            _copy("organizationmember_id"),
            _copy("organizationmemberteam_id", "id"),
            _copy("is_active"),
            _copy("role"),
            _NOW,
        ),
        joins="JOIN sentry_organizationmember m ON m.id = s.organizationmember_id",
        join_tables=("sentry_organizationmember",),
    ),
    # upsert_replicated_team
    "sentry_team": Replica(
        "sentry_teamreplica",
        "sentry_team",
        (
            _copy("team_id", "id"),
            _copy("organization_id"),
            _copy("slug"),
            _copy("name"),
            _copy("status"),
            _NOW,
        ),
    ),
}


@dataclass(frozen=True)
class TableColumn:
    type: str
    required: bool  # NOT NULL without a default


def table_columns(ctx: WriteContext, table: str) -> dict[str, TableColumn]:
    """The target's columns of ``table`` (empty when it has no such table), once a batch."""
    key = ("columns", table)
    if key not in ctx.scratch:
        rows = ctx.cur.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
            "a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' "
            "FROM pg_attribute a WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 "
            "AND NOT a.attisdropped",
            (table,),
        ).fetchall()
        ctx.scratch[key] = {name: TableColumn(kind, required) for name, kind, required in rows}
    return ctx.scratch[key]


def _statement(ctx: WriteContext, replica: Replica) -> str | None:
    """The INSERT of ``replica`` for this target, or None when it cannot be written."""
    key = ("replica", replica.table)
    if key in ctx.scratch:
        return ctx.scratch[key]
    target = table_columns(ctx, replica.table)
    source = table_columns(ctx, replica.source)
    statement = None
    joins_present = all(table_columns(ctx, t) for t in replica.join_tables)
    if target and source and joins_present:
        columns = [
            c for c in replica.columns if c.name in target and all(r in source for r in c.reads)
        ]
        names = {c.name for c in columns} | {"id"}
        missing = [n for n, col in target.items() if col.required and n not in names]
        if missing:
            # A newer Sentry's replica with a required column relocate cannot fill.
            log.warning(
                "no %s rows: relocate cannot fill its column(s) %s",
                replica.table,
                ", ".join(sorted(missing)),
            )
        else:
            # JSON columns take no text by assignment (the source may be a text JSONField).
            exprs = [
                sql.SQL("CAST(({}) AS {})").format(
                    sql.SQL(c.expression), sql.SQL(target[c.name].type)
                )
                if target[c.name].type in ("json", "jsonb")
                else sql.SQL(c.expression)
                for c in columns
            ]
            statement = (
                sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} AS s {} WHERE s.id = ANY(%s) ")
                .format(
                    sql.Identifier(replica.table),
                    sql.SQL(", ").join(sql.Identifier(c.name) for c in columns),
                    sql.SQL(", ").join(exprs),
                    sql.Identifier(replica.source),
                    sql.SQL(replica.joins),
                )
                .as_string(ctx.cur)
                + "ORDER BY s.id"
            )
    ctx.scratch[key] = statement
    return statement


def write_replicas(ctx: WriteContext, source_table: str, ids: Sequence[int]) -> list[int]:
    """Writes the replicas of the rows ``ids`` of ``source_table`` just written (if that
    table is replicated and the target has its replica table); records them for rollback.

    A replica row that would collide with a row already in the replica table (a stale
    replica) is skipped: Sentry deletes the stale one, relocate leaves the target's rows.
    """
    replica = REPLICAS.get(source_table)
    ids = [i for i in ids if i is not None]
    if replica is None or not ids:
        return []
    statement = _statement(ctx, replica)
    if statement is None:
        return []
    return under_nested_loops(
        ctx.cur,
        lambda: insert_side_effects(ctx, statement, (bigint_array(sorted(ids)),), replica.table),
    )
