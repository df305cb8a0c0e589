"""The command line's shape: one module per command, each declaring its command (name, text,
options, handler); an option a parent parser defines behaves the same in every command using it."""
import argparse
import importlib
import pkgutil

import pytest

from tensorflow_kappa import cli
from tensorflow_kappa.cli import options

#: The modules of the package that are not commands.
SHARED = {"__main__", "command", "options", "quiet"}


def subcommands(parser):
    """{name: parser} of the subcommands of ``parser``."""
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_every_command_module_declares_one_command_with_its_handler_and_text():
    names = sorted({m.name for m in pkgutil.iter_modules(cli.__path__)} - SHARED)
    modules = [importlib.import_module(f"tensorflow_kappa.cli.{name}") for name in names]
    assert {m.COMMAND for m in modules} == set(cli.COMMANDS)
    for name, module in zip(names, modules):
        parser = argparse.ArgumentParser()
        commands = parser.add_subparsers(dest="command")
        sub = module.COMMAND.register(commands)
        [(command, registered)] = commands.choices.items()
        assert registered is sub and command.replace("-", "_") == name
        assert sub.get_default("func") is module.run and callable(module.run)
        # The module docstring is the command's text: its first paragraph the help line.
        assert module.COMMAND.doc is module.__doc__
        summary = " ".join(module.__doc__.split("\n\n")[0].split())
        assert commands._choices_actions[0].help == summary
    assert sorted(c.replace("-", "_") for c in subcommands(cli.build_parser())) == names


PARENTS = {
    "training": options.training(epochs=1, learning_rate=0.1),
    "seed": options.seed(),
    "population": options.population(10, "runs"),
    "ranges": options.ranges((-3, 3), (10, 15)),
}
VALUES = {
    "--epochs": ["3", "0", "2.5", "x"],
    "--learning-rate": ["0.5", "1", "0", "-1", "nan", "inf", "x"],
    "--batch-size": ["16", "0", "-3"],
    "--seed": ["7", "0", "4294967295", "4294967296", "-1", "1.5", "x"],
    "--seeds": ["3", "0", "x"],
    "--first-seed": ["10", "-1", "4294967296"],
    "--train-range": ["[-1, 1]", "[[-2, -1], [1, 2]]", "[1, -1]", "[-3", "3", "[true, 3]",
                      "[[0, 1], [false, 2]]", "[\"1\", 3]"],
    "--extrapolation-range": ["[10, 15]", "[15, 10]", "[[10, 15], 3]"],
}


def users(parent_action):
    """{command: its action} for the commands whose parser carries the parent's option
    (the same option strings and type)."""
    found = {}
    for command, parser in subcommands(cli.build_parser()).items():
        for action in parser._actions:
            if (action.option_strings == parent_action.option_strings
                    and action.type is parent_action.type):
                found[command] = (parser, action)
    return found


def outcome(parser, command, argv, capsys):
    """The parsed value, or the error message without the command's name."""
    try:
        return "value", vars(parser.parse_args(argv))
    except SystemExit as stop:
        err = capsys.readouterr().err
        assert stop.code == 2 and err.startswith(f"kappa {command}: error: "), err
        return "error", err[len(f"kappa {command}: error: "):].replace(f"kappa {command}", "")


@pytest.mark.parametrize("option", sorted(VALUES))
def test_a_parent_option_behaves_the_same_in_every_command(option, capsys):
    [parent_action] = [a for p in PARENTS.values() for a in p._actions
                       if option in a.option_strings]
    using = users(parent_action)
    assert using, option
    if option not in ("--train-range", "--extrapolation-range"):  # arithmetic's alone
        assert len(using) >= 2, (option, list(using))
    for value in VALUES[option]:
        seen = {}
        for command, (parser, action) in using.items():
            kind, result = outcome(parser, command, [option, value], capsys)
            seen[command] = (kind, result[action.dest] if kind == "value" else result)
        assert len(set(map(repr, seen.values()))) == 1, (option, value, seen)
        kind, result = next(iter(seen.values()))
        if kind == "error":
            assert f"argument {option}" in result and value in result, result


def test_the_output_folder_behaves_the_same_in_every_command(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    using = users(options.output("runs/x")._actions[0])
    assert set(using) == {"ablation", "arithmetic", "nalm-benchmark", "fixed-point"}
    messages = set()
    for command, (parser, _) in using.items():
        assert parser.get_default("out") == f"runs/{command}"
        with pytest.raises(SystemExit) as stop:
            cli.main([command, "--out", str(blocker / "sub")])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith(f"kappa {command}: error: "), err
        messages.add(err[len(f"kappa {command}: error: "):])
    [message] = messages
    assert message.startswith("argument --out: cannot write files in") and "a_file" in message
