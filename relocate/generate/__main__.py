"""``python -m relocate.generate OUT --rows N ...``: the command without the CLI."""

from relocate.generate.engine import main

raise SystemExit(main())
