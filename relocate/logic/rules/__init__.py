"""Per-model import rules: how each Sentry model is normalised and written.

Models without an entry use ``relocate.db.handler.Handler`` (FK rewrite, plain insert).
"""

from __future__ import annotations

from relocate.db.handler import Handler
from relocate.logic.rules.config import ApiTokenHandler, OverwritableConfigHandler
from relocate.logic.rules.orgs import org_handlers
from relocate.logic.rules.projects import project_handlers
from relocate.logic.rules.users import (
    EmailHandler,
    UserEmailHandler,
    UserHandler,
    UserIpHandler,
    UserOptionHandler,
    UserOwnedHandler,
)


def build_handlers() -> dict[str, Handler]:
    """Returns a fresh handler per model that has rules of its own."""
    handlers: dict[str, Handler] = {
        "sentry.user": UserHandler(),
        "sentry.email": EmailHandler(),
        "sentry.useremail": UserEmailHandler(),
        "sentry.useroption": UserOptionHandler(),
        "sentry.userpermission": UserOwnedHandler(),
        "sentry.userip": UserIpHandler(),
        "sentry.option": OverwritableConfigHandler(("key",)),
        "sentry.controloption": OverwritableConfigHandler(("key",)),
        "sentry.relay": OverwritableConfigHandler(("relay_id",)),
        "sentry.relayusage": OverwritableConfigHandler(("relay_id", "version")),
        "sentry.userrole": OverwritableConfigHandler(("name",)),
        "sentry.apitoken": ApiTokenHandler(),
    }
    handlers.update(org_handlers())
    handlers.update(project_handlers())
    return handlers
