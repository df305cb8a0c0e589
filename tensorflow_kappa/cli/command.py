"""What a ``kappa`` command is: its name, its text, its arguments and its handler.

Each command module declares one :class:`Command`, ``COMMAND``; its module docstring
is the command's text (the first paragraph ``kappa --help`` lists, the rest
``kappa <command> --help`` describes), so it is written once.

Example:
>>> import argparse
>>> def run(args): return 0
>>> demo = Command("demo", "Say hello.\\n\\nA longer text.", lambda p: p.add_argument("--x"), run)
>>> commands = argparse.ArgumentParser(prog="kappa").add_subparsers()
>>> parser = demo.register(commands)
>>> parser.description, parser.parse_args(["--x", "1"]).func is run
('A longer text.', True)
"""
from __future__ import annotations

import argparse
from typing import Callable, NamedTuple, Sequence

__all__ = ["Command"]


class Command(NamedTuple):
    """One ``kappa`` command (see the module docstring).

    Attributes:
        name: the subcommand (``"nalm-benchmark"``).
        doc: its text: a first paragraph (the help line) and a description.
        add_arguments: adds the command's own options to its parser.
        run: the handler, ``run(args) -> exit status``.
        parents: the parent parsers of the options it shares with other commands.
        needs_tensorflow: False where the command never imports TensorFlow (then
            :func:`~tensorflow_kappa.cli.main` does not either).
    """

    name: str
    doc: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    parents: Callable[[], Sequence[argparse.ArgumentParser]] = tuple
    needs_tensorflow: bool = True

    def register(self, commands: "argparse._SubParsersAction") -> argparse.ArgumentParser:
        """Add the command to the subcommands ``commands``; return its parser."""
        summary, _, description = self.doc.strip().partition("\n\n")
        parser = commands.add_parser(self.name, help=" ".join(summary.split()),
                                     description=" ".join(description.split()) or None,
                                     parents=list(self.parents()))
        self.add_arguments(parser)
        parser.set_defaults(func=self.run, needs_tensorflow=self.needs_tensorflow)
        return parser
