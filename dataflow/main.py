"""Launcher of relocate's Dataflow Flex Template (``FLEX_TEMPLATE_PYTHON_PY_FILE``).

Dataflow runs it with the template's parameters as ``--name=value``; ``relocate.cli.flex``
maps them onto ``relocate import <scope>`` and runs the import.
"""

import sys

from relocate.cli.flex import main

if __name__ == "__main__":
    sys.exit(main())
