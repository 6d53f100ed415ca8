"""A realistic synthetic Sentry export of any size (``relocate generate``): see ``engine``."""

from relocate.generate.engine import (
    GEN_SCOPES,
    GLOBAL_ONLY,
    GenerateResult,
    Plan,
    generate,
    iter_rows,
    main,
    org_counts,
    plan_export,
    register,
    run_generate,
)

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
