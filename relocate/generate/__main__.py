"""``python -m relocate.generate OUT --rows N ...``: the command without the CLI."""

from relocate.generate.cli import main

raise SystemExit(main())
