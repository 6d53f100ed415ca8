"""Builds the target-table description (``tables.json``) from Sentry's column inventory.

``docs/sentry-columns.json`` records, per model, Sentry's columns as Django would create them
(read from Sentry's model sources, with notes on what varies between versions).
``build_tables`` turns it into the project's own compact format: one entry per table, with
PostgreSQL types, SQL defaults, unique sets, checks and the foreign keys that get a real
constraint. ``relocate.db.ddl`` creates the tables from it; the sink and the field
mapping read it.

Decisions applied to every table (table-specific ones are in each entry's ``notes``):

* The ``id`` primary key is ``bigserial`` (``serial`` for Sentry's 32-bit ``BoundedAutoField``)
  so that ``pg_get_serial_sequence`` finds the sequence; an identity column would too, but a
  real Sentry database has either, and the sink handles both.
* Every column with a Python-side default in Sentry (``timezone.now``, booleans, numbers,
  strings, ``dict``/``list``, uuid and token generators) gets an equivalent SQL ``DEFAULT``,
  so an export from a version that lacks the field still loads. Django itself creates no DB
  defaults (except ``db_default``), so a real Sentry database has fewer defaults than ours.
* ``CHECK (col >= 0)`` of Sentry's positive integer fields and the models' CheckConstraints
  become named table CHECK constraints.
* Real FOREIGN KEY constraints (``DEFERRABLE INITIALLY DEFERRED``, as Django creates them)
  only for Django FK fields (FlexibleForeignKey, ForeignKey, OneToOneField...) whose
  ``db_constraint`` is not False and whose target table is in the schema.
  HybridCloudForeignKey and implicit (plain integer) references get no constraint; the
  column's ``fk`` still names the table it refers to.
* ``citext`` (sentry.email) becomes ``text`` with a unique index on ``lower(email)``, so no
  extension is needed.
* Non-unique indexes are not created: they cost write speed and the import needs none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMAT_VERSION = 1

#: Replica tables Sentry's outboxes fill from imported rows (relocate.logic.rules.replicas).
REPLICA_MODELS: tuple[str, ...] = (
    "hybridcloud.apikeyreplica",
    "hybridcloud.apitokenreplica",
    "hybridcloud.organizationslugreservationreplica",
    "hybridcloud.orgauthtokenreplica",
    "sentry.authidentityreplica",
    "sentry.authproviderreplica",
    "sentry.organizationmemberteamreplica",
    "sentry.teamreplica",
)

#: Side-effect and chunk tables that Sentry's importer writes besides the exported models.
SIDE_EFFECT_MODELS: tuple[str, ...] = (
    "sentry.lostpasswordhash",
    "sentry.organizationslugreservation",
    "sentry.organizationmapping",
    "sentry.organizationmembermapping",
    "sentry.regionimportchunk",
    "sentry.controlimportchunk",
    "sentry.controlimportchunkreplica",
    *REPLICA_MODELS,
)


def _inventory_column(
    name: str,
    pg_type: str,
    *,
    null: bool = False,
    unique: bool = False,
    default: object = None,
    django_field: str = "",
    fk_to: str | None = None,
) -> dict[str, Any]:
    return {
        "name": name,
        "field": name,
        "pg_type": pg_type,
        "null": null,
        "unique": unique,
        "default": default,
        "django_field": django_field,
        "fk_to": fk_to,
    }


def _replica_entry(
    table: str,
    source: str,
    columns: list[dict[str, Any]],
    unique_together: list[list[str]] | None = None,
) -> dict[str, Any]:
    id_type = "serial" if table == "sentry_organizationmember_teamsreplica" else "bigserial"
    return {
        "table": table,
        "columns": [
            _inventory_column("id", id_type, unique=True, django_field="BoundedBigAutoField"),
            *columns,
            _inventory_column("date_added", "timestamptz", default="timezone.now"),
        ],
        "constraints": [],
        "indexes": [],
        "unique_together": unique_together or [],
        "notes": "relocate's own description (the column inventory has no replica tables)",
        "source": source,
    }


_c = _inventory_column
_ORG_FK = "sentry_organization(id)"
_SCOPES = [
    _c("scopes", "bigint", default=0, django_field="BitField"),
    _c("scope_list", "text[]", null=True, django_field="ArrayField"),
]

#: Replica tables in the inventory's format, from Sentry's models (newest columns; a target
#: may have fewer, relocate writes the ones it has). Used when the inventory lacks them.
RELOCATE_COLUMNS: dict[str, dict[str, Any]] = {
    "hybridcloud.organizationslugreservationreplica": _replica_entry(
        "hybridcloud_organizationslugreservationreplica",
        "src/sentry/models/organizationslugreservationreplica.py",
        [
            _c("organization_slug_reservation_id", "bigint", unique=True),
            _c("slug", "varchar(50)", unique=True),
            _c("organization_id", "bigint"),
            _c("user_id", "bigint", null=True),
            _c("region_name", "varchar(48)"),
            _c("reservation_type", "bigint", default=0),
        ],
        [["organization_id", "reservation_type"]],
    ),
    "hybridcloud.orgauthtokenreplica": _replica_entry(
        "hybridcloud_orgauthtokenreplica",
        "src/sentry/hybridcloud/models/orgauthtokenreplica.py",
        [
            _c("organization_id", "bigint", django_field="FlexibleForeignKey", fk_to=_ORG_FK),
            _c("orgauthtoken_id", "bigint"),
            _c("token_hashed", "text"),
            _c("name", "varchar(255)"),
            _c("scope_list", "text[]", null=True, django_field="ArrayField"),
            _c("created_by_id", "bigint", null=True),
            _c("date_deactivated", "timestamptz", null=True),
        ],
    ),
    "hybridcloud.apitokenreplica": _replica_entry(
        "hybridcloud_apitokenreplica",
        "src/sentry/hybridcloud/models/apitokenreplica.py",
        [
            *_SCOPES,
            _c("application_id", "bigint", null=True),
            _c("organization_id", "bigint", null=True),
            _c("application_is_active", "boolean", default=False),
            _c("user_id", "bigint"),
            _c("apitoken_id", "bigint"),
            _c("token", "varchar(71)"),
            _c("hashed_token", "varchar(128)", null=True),
            _c("expires_at", "timestamptz", null=True),
            _c("allowed_origins", "text", null=True),
            _c("scoping_organization_id", "bigint", null=True),
        ],
    ),
    "hybridcloud.apikeyreplica": _replica_entry(
        "hybridcloud_apikeyreplica",
        "src/sentry/hybridcloud/models/apikeyreplica.py",
        [
            *_SCOPES,
            _c("apikey_id", "bigint"),
            _c("organization_id", "bigint", django_field="FlexibleForeignKey", fk_to=_ORG_FK),
            _c("label", "varchar(64)"),
            _c("key", "varchar(32)"),
            _c("status", "integer CHECK (col >= 0)"),
            _c("allowed_origins", "text", null=True),
        ],
    ),
    "sentry.authproviderreplica": _replica_entry(
        "sentry_authproviderreplica",
        "src/sentry/models/authproviderreplica.py",
        [
            _c("auth_provider_id", "bigint", unique=True),
            _c(
                "organization_id",
                "bigint",
                unique=True,
                django_field="FlexibleForeignKey",
                fk_to=_ORG_FK,
            ),
            _c("provider", "varchar(128)"),
            _c("config", "text"),
            _c("default_role", "integer CHECK (col >= 0)", default=50),
            _c("default_global_access", "boolean", default=True),
            _c("scim_enabled", "boolean"),
            _c("allow_unlinked", "boolean"),
        ],
    ),
    "sentry.authidentityreplica": _replica_entry(
        "sentry_authidentityreplica",
        "src/sentry/models/authidentityreplica.py",
        [
            _c("auth_identity_id", "bigint", unique=True),
            _c("user_id", "bigint"),
            _c("auth_provider_id", "bigint"),
            _c("ident", "varchar(128)"),
            _c("data", "text"),
            _c("last_verified", "timestamptz", default="timezone.now"),
        ],
        [["auth_provider_id", "ident"], ["auth_provider_id", "user_id"]],
    ),
    "sentry.organizationmemberteamreplica": _replica_entry(
        "sentry_organizationmember_teamsreplica",
        "src/sentry/models/organizationmemberteamreplica.py",
        [
            _c("team_id", "bigint"),
            _c("organization_id", "bigint"),
            _c("organizationmember_id", "bigint"),
            _c("organizationmemberteam_id", "bigint"),
            _c("is_active", "boolean"),
            _c("role", "varchar(32)", null=True),
        ],
        [["team_id", "organizationmember_id", "organization_id"]],
    ),
    "sentry.teamreplica": _replica_entry(
        "sentry_teamreplica",
        "src/sentry/models/teamreplica.py",
        [
            _c("team_id", "bigint"),
            _c("organization_id", "bigint"),
            _c("slug", "varchar(50)"),
            _c("name", "varchar(64)"),
            _c("status", "integer CHECK (col >= 0)"),
            _c("org_role", "varchar(32)", null=True),
        ],
        [["organization_id", "slug"]],
    ),
}

#: Columns of sentry-columns.json left out of the schema, with the reason.
OMITTED_COLUMNS: dict[tuple[str, str], str] = {
    ("sentry.user", "email_unique"): (
        "column email_unique omitted: a temporary field of one Sentry version, absent from "
        "detailed.json uniques and from the 24.7.0 export (UNCONFIRMED for the target)"
    ),
}

#: Django field classes that create a real database foreign key (unless db_constraint=False).
_DJANGO_FK_FIELDS = frozenset(
    {
        "FlexibleForeignKey",
        "ForeignKey",
        "OneToOneField",
        "OneToOneCascadeDeletes",
        "DefaultForeignKey",
        "DefaultOneToOneField",
    }
)
#: detailed.json kinds that never have a database constraint.
_PLAIN_REFERENCE_KINDS = frozenset({"HybridCloudForeignKey", "ImplicitForeignKey"})

_MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1

# Random hex of uuid4 quality without an extension: gen_random_uuid() is built in since PG 13.
_HEX32 = "replace(gen_random_uuid()::text, '-', '')"
_HEX64 = f"{_HEX32} || {_HEX32}"

#: Defaults whose SQL depends on the model (the Python callable differs per model).
_MODEL_DEFAULTS: dict[tuple[str, str], str] = {
    ("sentry.apigrant", "callable:default_expiration"): "now() + interval '10 minutes'",
    ("sentry.apitoken", "callable:default_expiration"): "now() + interval '30 days'",
}


#: Values Sentry generates in ``save()``/``__init__`` when empty (no field default).
_SAVE_TIME_DEFAULTS: dict[tuple[str, str], str] = {
    ("sentry.lostpasswordhash", "hash"): _HEX32,  # get_secure_token()
    ("sentry.apikey", "key"): _HEX32,  # secrets.token_hex(16)
    ("sentry.servicehook", "guid"): _HEX32,  # uuid4().hex
    ("sentry.projectkey", "public_key"): _HEX32,  # uuid4().hex
    ("sentry.projectkey", "secret_key"): _HEX32,  # uuid4().hex
}


class TablesError(ValueError):
    """The column inventory cannot produce a consistent schema."""


def constraint_name(*parts: str) -> str:
    """A deterministic constraint or index name of at most 63 bytes.

    Longer names are cut and given a hash suffix, so two long names never collide and
    the name is the same on every run (idempotent DDL looks constraints up by name).
    """
    name = "_".join(parts)
    if len(name.encode()) <= _MAX_IDENTIFIER:
        return name
    digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()[:8]
    return name.encode()[: _MAX_IDENTIFIER - 9].decode(errors="ignore") + "_" + digest


def unique_constraint_name(table: str, columns: Sequence[str]) -> str:
    """Name of the UNIQUE constraint on ``columns`` of ``table``."""
    return constraint_name(table, *columns, "uniq")


def _sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _django_kind(column: Mapping[str, Any]) -> str:
    return str(column.get("django_field") or "").split(" ")[0]


def _column_notes(column: Mapping[str, Any]) -> str:
    return " ".join(str(column.get(k) or "") for k in ("note", "notes"))


def _table_index(columns_json: Mapping[str, Any], registry_doc: Mapping[str, Any]) -> dict:
    """Model name -> table name, for every model either file knows."""
    tables = {m["name"]: m["table"] for m in registry_doc.get("models", [])}
    tables.update(registry_doc.get("excluded", {}))
    tables.update({name: entry["table"] for name, entry in columns_json.items()})
    return tables


def _fk_target_table(fk_to: str | None, model_tables: Mapping[str, str]) -> str | None:
    """The table a ``fk_to`` value names: ``"auth_user(id) [...]"`` or a model name."""
    if not fk_to:
        return None
    if "(" in fk_to:
        return fk_to.split("(", 1)[0].strip()
    if fk_to not in model_tables:
        raise TablesError(f"foreign key to unknown model {fk_to!r}")
    return model_tables[fk_to]


def self_references(columns_json: Mapping[str, Any]) -> dict[str, list[str]]:
    """Model -> columns whose foreign key (constrained or not) points at the model's own table."""
    out: dict[str, list[str]] = {}
    for model, entry in columns_json.items():
        own = entry["table"]
        cols = [
            c["name"]
            for c in entry["columns"]
            if c.get("fk_to")
            and (c["fk_to"] == model or str(c["fk_to"]).split("(", 1)[0].strip() == own)
        ]
        if cols:
            out[model] = sorted(cols)
    return out


def _pg_type(model: str, column: Mapping[str, Any]) -> tuple[str, str | None]:
    """The DDL type of a column and its column CHECK expression (quoted), if any."""
    raw = str(column["pg_type"]).strip()
    name = column["name"]
    check = None
    match = re.fullmatch(r"(.+?)\s+CHECK\s*\(\s*col\s+(.+)\)", raw)
    if match:
        raw, check = match.group(1), f"{_quote_ident(name)} {match.group(2)}"
    if column.get("check"):
        expr = str(column["check"]).strip()
        if not expr.startswith(name + " "):
            raise TablesError(f"{model}.{name}: unexpected check {expr!r}")
        check = _quote_ident(name) + expr[len(name) :]
    if raw.endswith("[][]"):
        # PostgreSQL ignores declared array dimensions; write what it reports.
        raw = raw[:-2]
    if raw == "citext":
        raw = "text"
    if not re.fullmatch(r"[a-z ]+(\(\d+\))?(\[\])?", raw):
        raise TablesError(f"{model}.{name}: unexpected type {column['pg_type']!r}")
    return raw, check


def _is_char_type(pg_type: str) -> bool:
    return pg_type == "text" or pg_type.startswith("varchar")


def _default_sql(model: str, column: Mapping[str, Any], pg_type: str) -> str | None:
    """The SQL DEFAULT equivalent to the column's db_default or Python default."""
    name = column["name"]
    raw: Any = column.get("default")
    if "db_default" in column:
        raw = column["db_default"]
        if raw == "NULL":
            return None
    if raw is None:
        return None
    if isinstance(raw, bool):
        if pg_type != "boolean":
            raise TablesError(f"{model}.{name}: boolean default on {pg_type}")
        return "true" if raw else "false"
    if isinstance(raw, (int, float)):
        return repr(raw)
    text = str(raw).strip()
    lowered = text.lower()
    if lowered.startswith("none"):
        return None
    if (model, text) in _MODEL_DEFAULTS:
        return _MODEL_DEFAULTS[(model, text)]
    if "timezone.now" in text or lowered.startswith("auto_now"):
        if pg_type != "timestamptz":
            raise TablesError(f"{model}.{name}: now() default on {pg_type}")
        return "now()"
    if text in ("dict", "callable:dict") or text.startswith("dict "):
        if pg_type == "jsonb":
            return "'{}'::jsonb"
        if pg_type == "text":
            return "'{}'"
        raise TablesError(f"{model}.{name}: dict default on {pg_type}")
    if text in ("list", "callable:list"):
        if pg_type.endswith("[]"):
            return "'{}'"
        if pg_type == "jsonb":
            return "'[]'::jsonb"
        if pg_type == "text":
            return "'[]'"
        raise TablesError(f"{model}.{name}: list default on {pg_type}")
    if "uuid4" in text:
        if pg_type == "uuid":
            return "gen_random_uuid()"
        if _is_char_type(pg_type):
            return "gen_random_uuid()::text"
        raise TablesError(f"{model}.{name}: uuid default on {pg_type}")
    if text in ("callable:generate_token",) or text.startswith("generate_secret"):
        return _HEX64  # secrets.token_hex(32): 64 hex digits
    if text == "get_secure_token":
        return _HEX32  # secrets.token_hex(16)
    if text == "callable:generate_code":
        return _HEX32  # uuid4().hex
    if text == "callable:generate_name":
        return "'Application ' || substr(" + _HEX32 + ", 1, 8)"
    match = re.match(r"\[.*\]\s*->\s*(-?\d+)$", text)  # bitfield default: '["store"] -> 1'
    if match:
        return match.group(1)
    match = re.match(r"(-?\d+(?:\.\d+)?)(?:\s|$)", text)  # '0 (ObjectStatus.ACTIVE)'
    if match:
        return match.group(1)
    match = re.search(r"normally '([^']*)'", text) or re.match(r"'([^']*)'", text)
    if match and _is_char_type(pg_type):
        return _sql_literal(match.group(1))
    if re.fullmatch(r"[A-Za-z0-9_. -]*", text) and _is_char_type(pg_type):
        return _sql_literal(text)
    raise TablesError(f"{model}.{name}: cannot translate default {raw!r} for {pg_type}")


def _parse_columns_list(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _model_check(table: str, raw: str) -> dict[str, str]:
    """A ``CheckConstraint name: expr`` entry as a named CHECK; ``(both NULL)`` spelled out."""
    match = re.fullmatch(r"CheckConstraint (\w+)(?: \([^)]*\))?: (.+)", raw)
    if not match:
        raise TablesError(f"{table}: cannot parse constraint {raw!r}")
    name, expr = match.group(1), match.group(2).strip()
    if "(both NULL)" in expr:
        cols = list(dict.fromkeys(re.findall(r"(\w+) IS (?:NOT )?NULL", expr)))
        if len(cols) != 2:
            raise TablesError(f"{table}: cannot expand (both NULL) in {raw!r}")
        expr = expr.replace("(both NULL)", f"({cols[0]} IS NULL AND {cols[1]} IS NULL)")
    return {"name": constraint_name(name), "expression": expr}


def _dedupe(sets: Iterable[list[str]]) -> list[list[str]]:
    seen: set[frozenset[str]] = set()
    out = []
    for cols in sets:
        key = frozenset(cols)
        if key not in seen:
            seen.add(key)
            out.append(cols)
    return out


def _build_table(
    model: str,
    entry: Mapping[str, Any],
    registry_model: Mapping[str, Any] | None,
    model_tables: Mapping[str, str],
    schema_tables: frozenset[str],
) -> dict[str, Any]:
    table = entry["table"]
    notes: list[str] = []
    reg_fks = {fk["column"]: fk for fk in (registry_model or {}).get("foreign_keys", [])}
    columns: list[dict[str, Any]] = []
    checks: list[dict[str, str]] = []
    foreign_keys: list[dict[str, Any]] = []
    uniques: list[list[str]] = []
    unique_indexes: list[dict[str, Any]] = []
    primary_key: list[str] = []

    for col in entry["columns"]:
        name = col["name"]
        if (model, name) in OMITTED_COLUMNS:
            notes.append(OMITTED_COLUMNS[(model, name)])
            continue
        kind = _django_kind(col)
        reg_fk = reg_fks.get(name)
        field = col.get("field")
        if reg_fk is not None:
            if field is not None and field != reg_fk["field"]:
                raise TablesError(
                    f"{model}.{name}: field {field!r} disagrees with registry {reg_fk['field']!r}"
                )
            field = reg_fk["field"]
        elif field is None:
            is_fk_field = kind in _DJANGO_FK_FIELDS and name.endswith("_id")
            field = name[:-3] if is_fk_field else name
        pg_type, check = _pg_type(model, col)
        if col["pg_type"] == "citext":
            notes.append(f"{name}: citext stored as text, uniqueness on lower({name})")
        if name == "id" and pg_type in ("bigserial", "serial"):
            primary_key.append(name)
        if check:
            checks.append({"name": constraint_name(table, name, "check"), "expression": check})
        target = _fk_target_table(col.get("fk_to"), model_tables)
        if target is not None:
            reasons = []
            if kind not in _DJANGO_FK_FIELDS:
                reasons.append(f"{kind} is a plain integer reference")
            if reg_fk is not None and reg_fk["kind"] in _PLAIN_REFERENCE_KINDS:
                reasons.append(f"registry kind {reg_fk['kind']}")
            if (
                col.get("db_constraint") is False
                or "db_constraint=False" in _column_notes(col)
                or "[logical only" in str(col.get("fk_to"))
            ):
                reasons.append("db_constraint=False")
            if not reasons and target not in schema_tables:
                reasons.append(f"target {target} is not in the schema")
                notes.append(f"{name}: no FK constraint, {target} is not in the schema")
            if not reasons:
                foreign_keys.append(
                    {
                        "name": constraint_name(table, name, "fk"),
                        "column": name,
                        "ref_table": target,
                        "ref_column": "id",
                        "deferrable": True,
                    }
                )
            elif kind in _DJANGO_FK_FIELDS and "db_constraint=False" in reasons:
                notes.append(f"{name}: {kind} with db_constraint=False, no FK constraint")
        default = _default_sql(model, col, pg_type)
        if default is None and (model, name) in _SAVE_TIME_DEFAULTS:
            default = _SAVE_TIME_DEFAULTS[(model, name)]
            notes.append(f"{name}: value Sentry generates on save as SQL default {default}")
        raw_default = col.get("default")
        if (
            default is not None
            and isinstance(raw_default, str)
            and re.search(r"generate|uuid|secure|expiration|normally", raw_default)
        ):
            notes.append(f"{name}: Python default {raw_default} as SQL {default}")
        columns.append(
            {
                "column": name,
                "field": field,
                "type": pg_type,
                "nullable": bool(col["null"]),
                "default": default,
                "fk": target,
            }
        )
        if col.get("unique") and name not in primary_key:
            if col["pg_type"] == "citext":
                unique_indexes.append(
                    {
                        "name": constraint_name(table, name, "lower", "uniq"),
                        "columns": [name],
                        "expression": f"lower({_quote_ident(name)})",
                        "where": None,
                        "deferrable": False,
                    }
                )
            else:
                uniques.append([name])

    if not primary_key:
        raise TablesError(f"{model}: no id primary key")
    by_field = {c["field"]: c["column"] for c in columns}
    known_columns = {c["column"] for c in columns}

    def to_column(name: str) -> str:
        if name in known_columns:
            return name
        if name in by_field:
            return by_field[name]
        raise TablesError(f"{model}: unique set names unknown field {name!r}")

    for together in entry.get("unique_together", []):
        uniques.append([to_column(f) for f in together])
    for raw in entry.get("constraints", []):
        if raw.startswith("CheckConstraint "):
            checks.append(_model_check(table, raw))
            continue
        match = re.fullmatch(r"UNIQUE \(([^)]*)\)(?: from unique=True)?", raw)
        if match:
            uniques.append([to_column(c) for c in _parse_columns_list(match.group(1))])
            continue
        match = re.fullmatch(r"UniqueConstraint (\w+) \(([^)]*)\)(.*)", raw)
        if not match:
            raise TablesError(f"{model}: cannot parse constraint {raw!r}")
        cname, cols = match.group(1), [to_column(c) for c in _parse_columns_list(match.group(2))]
        rest = re.sub(r"\s*\[.*\]\s*$", "", match.group(3)).strip()
        deferrable = "DEFERRABLE INITIALLY DEFERRED" in rest
        rest = rest.replace("DEFERRABLE INITIALLY DEFERRED", "").strip()
        where = rest[len("WHERE ") :].strip() if rest.startswith("WHERE ") else None
        if rest and where is None:
            raise TablesError(f"{model}: cannot parse constraint {raw!r}")
        if where is None and not deferrable:
            uniques.append(cols)
            continue
        unique_indexes.append(
            {
                "name": constraint_name(cname),
                "columns": cols,
                "expression": None,
                "where": where,
                "deferrable": deferrable,
            }
        )
        if deferrable:
            notes.append(
                f"unique {cname} is DEFERRABLE INITIALLY DEFERRED as in Sentry "
                "(cannot serve as an ON CONFLICT arbiter)"
            )
        else:
            notes.append(f"unique {cname} is a partial unique index WHERE {where}")

    # detailed.json is Sentry's own statement of what is unique: a set it lists that the
    # column inventory lacks is added, so collision detection and the schema agree.
    covered = {frozenset(u) for u in uniques} | {frozenset(u["columns"]) for u in unique_indexes}
    for reg_unique in (registry_model or {}).get("uniques", []):
        cols = [to_column(f) for f in reg_unique]
        if frozenset(cols) not in covered:
            uniques.append(cols)
            covered.add(frozenset(cols))
            notes.append(f"unique ({', '.join(cols)}) added from detailed.json")
    if entry.get("indexes"):
        notes.append(f"{len(entry['indexes'])} non-unique index(es) of Sentry not created")

    return {
        "model": model,
        "table": table,
        "relocatable": registry_model is not None,
        "columns": columns,
        "primary_key": primary_key,
        "uniques": _dedupe(uniques),
        "unique_indexes": unique_indexes,
        "checks": checks,
        "foreign_keys": foreign_keys,
        "notes": "; ".join(dict.fromkeys(notes)),
    }


def build_tables(columns_json: Mapping[str, Any], registry_doc: Mapping[str, Any]) -> dict:
    """Builds the ``tables.json`` document.

    Args:
        columns_json: the parsed ``docs/sentry-columns.json`` (model -> table, columns,
            constraints, unique_together, indexes, notes).
        registry_doc: the registry document of ``registry_build.build_registry``.

    Returns:
        ``{"format": 1, "tables": {model: entry}}``; an entry holds ``model``, ``table``,
        ``relocatable``, ``columns`` (each ``column``, ``field``, ``type``, ``nullable``,
        ``default``, ``fk``), ``primary_key``, ``uniques`` (column lists),
        ``unique_indexes`` (partial, expression or deferrable unique sets), ``checks``,
        ``foreign_keys`` (the real constraints) and ``notes``.

    Raises:
        TablesError: a registry model or side-effect table has no columns, a table
            disagrees with the registry, or a type, default or constraint is not understood.
    """
    registry_models = {m["name"]: m for m in registry_doc["models"]}
    columns_json = {**RELOCATE_COLUMNS, **columns_json}
    # Side-effect tables are built when the inventory describes them (tests check all are).
    wanted = list(registry_models) + [
        m for m in SIDE_EFFECT_MODELS if m in columns_json and m not in registry_models
    ]
    missing = [m for m in wanted if m not in columns_json]
    if missing:
        raise TablesError(f"no columns for model(s): {', '.join(missing)}")
    for name, reg in registry_models.items():
        if columns_json[name]["table"] != reg["table"]:
            raise TablesError(
                f"{name}: table {columns_json[name]['table']!r} != registry {reg['table']!r}"
            )
    model_tables = _table_index(columns_json, registry_doc)
    schema_tables = frozenset(columns_json[m]["table"] for m in wanted)
    tables = {
        model: _build_table(
            model, columns_json[model], registry_models.get(model), model_tables, schema_tables
        )
        for model in sorted(wanted)
    }
    return {"format": FORMAT_VERSION, "tables": tables}
