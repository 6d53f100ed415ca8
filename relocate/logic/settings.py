"""What one import is asked to do: scope, flags and identity. Picklable, immutable."""

from __future__ import annotations

from dataclasses import dataclass

from relocate.schemas.registry import IMPORT_SCOPES

#: ``settings.SENTRY_MONOLITH_REGION`` of Sentry (src/sentry/conf/server.py): the region
#: a self-hosted monolith records in its organization mappings and slug reservations.
MONOLITH_REGION = "--monolith--"
#: Sentry's REGION_NAME_LENGTH (the region_name columns are varchar(48)).
REGION_NAME_LENGTH = 48


@dataclass(frozen=True)
class ImportSettings:
    """The settings of one import run.

    Attributes:
        scope: ``users``, ``organizations``, ``config`` or ``global``.
        import_uuid: identity of the import (32 hex chars); the ledger is keyed by it, so
            rerunning with the same value resumes rather than duplicates.
        run_id: identity of this run of the import (a resumed import has a new one).
        dsn: the target database as a libpq connection string, without secrets: may be
            empty (libpq's ``PG*`` environment) or name a service (``service=NAME``).
            Never read directly: ``relocate.db.target`` resolves it with the secrets below.
        merge_users: reuse existing users on username collision (``--merge-users``).
        overwrite_configs: overwrite colliding config rows (``--overwrite-configs``).
        filter_usernames: only these users (None: no filter).
        filter_org_slugs: only these organizations (None: no filter).
        batch_size: rows per write transaction.
        geoip_db: a MaxMind database for user IP country/region codes.
        region_name: the region recorded in org mappings and slug reservations (None:
            the region the target's mappings or reservations already name, else
            ``MONOLITH_REGION``; ``relocate.logic.rules.orgs.target_region``).
        url_prefix: the instance URL written into regenerated org auth tokens (None: the
            target's ``system.url-prefix`` option, "" when unset, as Sentry reads it).
        fault: a deliberate fault for reliability tests (``relocate.db.faults``).
        max_db_connections: the most connections the pipeline's DoFns hold at once, over
            all workers (None: no cap; ``relocate.db.connection_cap``).
        dsn_secret: a Secret Manager secret holding the whole DSN (``dsn`` is then empty).
        password_secret: a Secret Manager secret holding the password for ``dsn``.
        secret_endpoint: ``HOST:PORT`` of a local Secret Manager API (tests only).
    """

    scope: str
    import_uuid: str
    run_id: str
    dsn: str
    merge_users: bool = False
    overwrite_configs: bool = False
    filter_usernames: frozenset[str] | None = None
    filter_org_slugs: frozenset[str] | None = None
    batch_size: int = 1000
    geoip_db: str | None = None
    region_name: str | None = None
    url_prefix: str | None = None
    fault: str | None = None
    max_db_connections: int | None = None
    # Names of secrets, not their values: these are pickled into the pipeline, and the
    # values are read only where a connection is opened (relocate.db.target).
    dsn_secret: str | None = None
    password_secret: str | None = None
    secret_endpoint: str | None = None

    def __post_init__(self) -> None:
        if self.scope not in IMPORT_SCOPES:
            raise ValueError(f"unknown import scope {self.scope!r}")
        if self.dsn_secret and self.dsn:
            raise ValueError("dsn must be empty when dsn_secret holds the DSN")

    @property
    def relocation_scopes(self) -> frozenset[str]:
        return IMPORT_SCOPES[self.scope]

    @property
    def is_global(self) -> bool:
        return self.scope == "global"
