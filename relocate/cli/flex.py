"""The Dataflow Flex Template's launcher: template parameters -> ``relocate import``.

Dataflow's launcher runs ``dataflow/main.py`` with every template parameter as
``--name=value`` and adds its own pipeline options (``--project``, ``--region``,
``--temp_location``, ...). Here::

    --scope=organizations --src=gs://b/export.tar --dsn_secret=projects/p/secrets/dsn
    --merge_users=true --project=p --region=r --temp_location=gs://b/tmp

becomes::

    relocate import organizations gs://b/export.tar --dsn-secret projects/p/secrets/dsn
    --merge-users --runner=DataflowRunner --project=p --region=r --temp_location=gs://b/tmp

A parameter named like a flag of ``relocate import <scope>`` (``-`` written ``_``) is that
flag; every other argument is a Beam pipeline option and passes through unchanged. The
flags are read from the CLI's own parser, so a new flag maps without a change here
(``dataflow/metadata.json`` declares it to Dataflow; a test keeps the two in step).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Parameters of the template that are not flags: the subcommand and its argument.
SCOPE, SOURCE = "scope", "src"
TRUE, FALSE = "true", "false"


class TemplateParameterError(ValueError):
    """A template parameter that cannot be mapped onto the CLI."""


def scope_parsers() -> dict[str, argparse.ArgumentParser]:
    """The parser of each ``relocate import <scope>`` subcommand."""
    from relocate.cli.parser import build_parser

    def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        return dict(action.choices)

    return subcommands(subcommands(build_parser())["import"])


def parameter_name(option: str) -> str:
    """``--dsn-secret`` -> ``dsn_secret``: the template parameter of a CLI flag."""
    return option.removeprefix("--").replace("-", "_")


def import_flags(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Template parameter name -> argparse action, for one scope's flags (not ``--help``)."""
    return {
        parameter_name(option): action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction)
        for option in action.option_strings
        if option.startswith("--")
    }


def _split(argument: str) -> tuple[str, str | None]:
    """``--name=value`` -> (``name``, ``value``); ``--name`` -> (``name``, None)."""
    name, equals, value = argument.removeprefix("--").partition("=")
    return name, (value if equals else None)


def _flag_arguments(name: str, action: argparse.Action, value: str | None) -> list[str]:
    option = next(o for o in action.option_strings if o.startswith("--"))
    if action.nargs == 0:  # store_true: a template passes "true" or "false"
        if value is None or value.lower() not in (TRUE, FALSE):
            raise TemplateParameterError(f"{name} must be {TRUE!r} or {FALSE!r}, got {value!r}")
        return [option] if value.lower() == TRUE else []
    if value is None:
        raise TemplateParameterError(f"{name} needs a value ({name}=...)")
    # An empty value is an unset optional parameter (a launch request may send "").
    return [option, value] if value else []


def cli_arguments(argv: Sequence[str]) -> list[str]:
    """Maps the launcher's arguments onto ``relocate`` CLI arguments.

    Args:
        argv: what Dataflow's launcher passes: ``--name=value`` for each template
            parameter, followed or interleaved with Beam pipeline options.

    Returns:
        ``["import", scope, src, *flags, *pipeline options]``, with
        ``--runner=DataflowRunner`` added when no runner is given and ``--setup_file``
        when the image names one (``FLEX_TEMPLATE_PYTHON_SETUP_FILE``) and none is given.

    Raises:
        TemplateParameterError: no scope or src, an unknown scope, a flag of another
            scope, a boolean that is neither true nor false, or a flag without a value.
    """
    parsers = scope_parsers()
    template: dict[str, str | None] = {}
    passed_through: list[str] = []
    for argument in argv:
        name, value = _split(argument)
        if argument.startswith("--") and name in (SCOPE, SOURCE):
            template[name] = value
        else:
            passed_through.append(argument)
    scope, source = template.get(SCOPE), template.get(SOURCE)
    if scope not in parsers:
        raise TemplateParameterError(f"scope must be one of {', '.join(parsers)}, got {scope!r}")
    if not source:
        raise TemplateParameterError("src is required: the export to import (gs://...)")

    flags = import_flags(parsers[scope])
    elsewhere = {
        name: [other for other, parser in parsers.items() if name in import_flags(parser)]
        for name in set().union(*(import_flags(p) for p in parsers.values()))
    }
    cli: list[str] = []
    pipeline_options: list[str] = []
    for argument in passed_through:
        name, value = _split(argument)
        if argument.startswith("--") and name in flags:
            cli += _flag_arguments(name, flags[name], value)
        elif argument.startswith("--") and name in elsewhere:
            # Beam would drop it as an unknown option: say so instead of ignoring it.
            raise TemplateParameterError(
                f"{name} is not a flag of `relocate import {scope}` "
                f"(only of {', '.join(elsewhere[name])})"
            )
        else:
            pipeline_options.append(argument)

    given = {_split(a)[0] for a in pipeline_options if a.startswith("--")}
    if "runner" not in given:
        pipeline_options.insert(0, "--runner=DataflowRunner")
    setup_file = os.environ.get("FLEX_TEMPLATE_PYTHON_SETUP_FILE")
    if setup_file and "setup_file" not in given:
        # The workers install relocate from the sdist of this setup.py.
        pipeline_options.append(f"--setup_file={setup_file}")
    # A launcher must exit once the job is submitted: the job concludes the import.
    detach = [] if "--detach" in cli else ["--detach"]
    return ["import", scope, source, *cli, *detach, *pipeline_options]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the template's launcher; returns the exit status of the import."""
    from relocate.cli.main import main as relocate_main

    try:
        arguments = cli_arguments(sys.argv[1:] if argv is None else argv)
    except TemplateParameterError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 2
    return relocate_main(arguments)
