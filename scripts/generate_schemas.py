"""Regenerates relocate/schemas/registry.json and tables.json from Sentry's data.

Usage: python scripts/generate_schemas.py [--shared ../shared]

Inputs: fixtures/sentry/model_dependencies/{detailed,sorted}.json (the model relations)
and docs/sentry-columns.json (the columns), both under the shared directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from relocate.schemas.registry_build import RegistryError, build_registry  # noqa: E402
from relocate.schemas.tables_build import build_tables, self_references  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--out", type=Path, default=ROOT / "relocate" / "schemas")
    args = parser.parse_args(argv)
    deps = args.shared / "fixtures" / "sentry" / "model_dependencies"
    detailed = json.loads((deps / "detailed.json").read_text())
    sorted_names = json.loads((deps / "sorted.json").read_text())
    columns = json.loads((args.shared / "docs" / "sentry-columns.json").read_text())
    try:
        registry = build_registry(detailed, sorted_names, self_references(columns))
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tables = build_tables(columns, registry)
    for name, doc in (("registry.json", registry), ("tables.json", tables)):
        path = args.out / name
        path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
