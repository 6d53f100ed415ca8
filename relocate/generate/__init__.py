"""A realistic synthetic Sentry export of any size, for benchmarks and tests.

``relocate generate OUT --rows N [--seed S] [--scope organizations|global] [--shuffle]``
writes a JSON array of ``{"model", "pk", "fields"}`` rows shaped like Sentry's own exports:
field names as in ``tables.json``, foreign keys as the source pk of the target row,
datetimes as ``2023-06-22T22:59:55.488Z``, bitfields as decimal strings (``"0"``),
Postgres arrays as JSON lists, option values as JSON text inside a string, snowflake-sized
pks for organizations, teams and projects.

The export is a set of identical-shape organizations ("tenants"), each with its users,
members, teams, projects and the per-project and per-user children, plus a few
installation options. ``N`` is the total row count: as many standard organizations as fit,
then one smaller organization (fewer users and projects) that brings the total to within
a few rows of ``N`` (within 1% for ``N >= 1,000``).

So 22% of the rows are users and their email addresses, 35% per-user children (options,
memberships, team memberships, recent searches, bookmarks) and 43% the organization's
projects, alerts, dashboards and their children (40% hang off a project). 1M rows are
1,321 organizations and about 66,000 users; 10M rows about 13,200 organizations.

The package:

* ``models``: the table, one entry per model: what its rows hang off, how many per
  parent, and every field's value (the per-organization row counts are listed there);
* ``values``: what the table's values are made of: word lists, JSON constants, the
  seed's timestamp and name pools, email addresses and slugs;
* ``engine``: compiles the table, sizes the export (``plan_export``) and streams it out
  (``generate``), in export order or shuffled;
* ``cli``: the ``relocate generate`` command (also ``python -m relocate.generate``).
"""

from relocate.generate.cli import main, register, run_generate
from relocate.generate.engine import (
    GEN_SCOPES,
    GenerateResult,
    Plan,
    generate,
    iter_rows,
    org_counts,
    plan_export,
)
from relocate.generate.models import GLOBAL_ONLY

__all__ = (
    "GEN_SCOPES",
    "GLOBAL_ONLY",
    "GenerateResult",
    "Plan",
    "generate",
    "iter_rows",
    "main",
    "org_counts",
    "plan_export",
    "register",
    "run_generate",
)
