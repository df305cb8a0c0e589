"""The ``kappa`` commands' reference, generated from their argparse parsers.

``.. kappa-commands::`` builds the parser the command line itself builds
(:func:`tensorflow_kappa.cli.build_parser`: every module of
:data:`tensorflow_kappa.cli.COMMANDS` registers its subcommand) and writes, per
subcommand, a section with its description, its usage line and one ``option`` entry
per argument, so ``:option:`kappa arithmetic --seeds``` links to it. A command or an
option added to a parser appears here at the next build; nothing is copied. In a
Markdown page, put it in an ``{eval-rst}`` block: it writes reStructuredText.
"""
from __future__ import annotations

import argparse
import re
from typing import Iterator, List, Tuple

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

_RST_SPECIAL = re.compile(r"([\\*`|_])")


def escape(text: str) -> str:
    """Text with reStructuredText's inline markup characters escaped."""
    return _RST_SPECIAL.sub(r"\\\1", text)


def subcommands(parser: argparse.ArgumentParser) -> Iterator[Tuple[str, argparse.ArgumentParser]]:
    """``(name, parser)`` of each subcommand, in the order they were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def command_rst(prog: str, parser: argparse.ArgumentParser) -> List[str]:
    """The section of one command: description, usage and an entry per argument."""
    title = f"``{prog}``"
    lines = [title, "-" * len(title), ""]
    if parser.description:
        lines += [escape(parser.description), ""]
    usage = parser.format_usage().strip()
    lines += [".. code-block:: text", ""] + [f"   {line}" for line in usage.splitlines()]
    lines += ["", f".. program:: {prog}", ""]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        name = (action.dest if not action.option_strings
                else formatter._format_action_invocation(action))
        lines += [f".. option:: {name}", ""]
        text = formatter._expand_help(action) if action.help else ""
        if action.choices is not None and "choices" not in text:
            text += f" (one of: {', '.join(map(str, action.choices))})"
        lines += [f"   {escape(text.strip()) or 'No further description.'}", ""]
    return lines


class KappaCommands(SphinxDirective):
    """``.. kappa-commands::``: every ``kappa`` subcommand, from its parser."""

    has_content = False

    def run(self) -> List[nodes.Node]:
        from tensorflow_kappa.cli import build_parser

        parser = build_parser()
        lines: List[str] = []
        for name, command in subcommands(parser):
            lines += command_rst(f"{parser.prog} {name}", command)
        node = nodes.section()
        node.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="kappa-commands"), node)
        return node.children


def setup(app: Sphinx) -> dict:
    app.add_directive("kappa-commands", KappaCommands)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
