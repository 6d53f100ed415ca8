"""Fields and models that older Sentry exports carry but the target schema no longer has.

Sentry strips these before deserialising (its ``DELETED_FIELDS`` / ``DELETED_MODELS`` shims
in ``sentry.backup.imports``) or drops them silently as unknown. The importer uses these
constants to ignore the fields without a finding and to report the models as skipped with a
known reason rather than as unknown input. Each entry says where it comes from.
"""

from __future__ import annotations

#: model -> export field names with no column in the target schema.
REMOVED_FIELDS: dict[str, frozenset[str]] = {
    # Sentry's DELETED_FIELDS shim (2024 releases): sentry.team lost org_role and actor,
    # sentry.rule / sentry.alertrule lost the Actor-based owner, grouphistory lost actor.
    "sentry.team": frozenset({"org_role", "actor"}),
    "sentry.rule": frozenset({"owner"}),
    # include_all_projects: BooleanField removed in late 2024; the 24.7.0 export still has it.
    "sentry.alertrule": frozenset({"owner", "include_all_projects"}),
    "sentry.grouphistory": frozenset({"actor"}),
    # Older hand-written fixtures (user-with-minimum-privileges.json and others) carry it;
    # no such field in the modelled version.
    "sentry.user": frozenset({"is_suspended"}),
    # An older version had an organization FK; removed before 24.7.0.
    "sentry.customdynamicsamplingruleproject": frozenset({"organization"}),
    # Oct 2024 version had only is_creator_only_editable; replaced by is_editable_by_everyone.
    "sentry.dashboardpermissions": frozenset({"is_creator_only_editable"}),
    # Older versions had project, is_default and an owner FK (now the owner_id column).
    "sentry.savedsearch": frozenset({"project", "is_default", "owner"}),
}

#: Models that exports of supported releases may contain but the target no longer has.
REMOVED_MODELS: frozenset[str] = frozenset(
    {
        "sentry.actor",  # Sentry's DELETED_MODELS shim
        # Present in the 24.7.0 export, gone from the modelled version (spec 12.5):
        "sentry.alertruleexcludedprojects",
        "sentry.alertruletriggerexclusion",
        "sentry.incidentsubscription",
        "sentry.spanattributeextractionruleconfig",
        "sentry.spanattributeextractionrulecondition",
    }
)


def is_removed_field(model: str, field: str) -> bool:
    """Whether ``field`` of ``model`` is a known removed field."""
    return field in REMOVED_FIELDS.get(model, frozenset())
