"""Rules of the Config-scope models (spec 6.4 and 6.5).

Options, control options, relays, relay usages and user roles keep the existing row on a
collision of their unique key (Existing) or, with ``--overwrite-configs``, overwrite it in
place (Overwrite; the old values go to the ledger so a rollback can restore them). API
tokens get new secrets when any of their unique values collides.
"""

from __future__ import annotations

from relocate.db.handler import (
    EXISTING,
    OVERWRITE,
    Handler,
    Item,
    WriteContext,
    find_existing,
    insert_row,
    note_change,
    select_row,
    update_rows,
)
from relocate.logic.rules.tokens import API_TOKEN_EXPIRATION, settle_api_token


class OverwritableConfigHandler(Handler):
    """A config model whose unique key decides Existing / Overwrite / Inserted."""

    def __init__(self, unique: tuple[str, ...]) -> None:
        self.unique = unique
        self.resolves_uniques = (frozenset(unique),)  # kept (Existing) or overwritten

    def write(self, ctx: WriteContext, items: list[Item]) -> None:
        for item in items:
            ctx.current = item
            key = {c: item.values.get(c) for c in self.unique}
            existing = None
            if any(v is not None for v in key.values()):
                existing = find_existing(ctx, key)
            if existing is None:
                insert_row(ctx, item)
                continue
            item.new_pk = existing
            if ctx.settings.overwrite_configs:
                fields = {c: v for c, v in item.values.items() if c not in self.unique}
                item.previous = _jsonable(select_row(ctx, existing, fields))
                update_rows(ctx, [(existing, fields)])
                item.kind = OVERWRITE
            else:
                item.kind = EXISTING


def _jsonable(row: dict) -> dict:
    return {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in row.items()}


class ApiTokenHandler(Handler):
    """``sentry.apitoken``: a token any of whose unique values (its token, refresh token
    or their hashes) is taken gets new secrets (``settle_api_token``)."""

    resolves_uniques = tuple(
        frozenset({c}) for c in ("token", "hashed_token", "refresh_token", "hashed_refresh_token")
    )

    def prepare(self, ctx: WriteContext, item: Item) -> None:
        values = item.values
        columns = {c.column for c in ctx.layout.columns}
        had_token = values.get("token") is not None
        changed = settle_api_token(values, columns, ctx.is_free)
        for column in changed:
            if values.get(column) is not None:
                ctx.reserve(column, values[column])
            note_change(
                item, column, "regenerated", "a secret of the token is taken, or it has none"
            )
        if had_token and "token" in changed and values.get("expires_at") is not None:
            # ApiToken.write_relocation_import (src/sentry/models/apitoken.py): a token
            # regenerated on a collision expires DEFAULT_EXPIRATION (30 days) from now.
            values["expires_at"] = ctx.now + API_TOKEN_EXPIRATION
