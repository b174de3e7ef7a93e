"""One CLI convention (docs/cli.md): -o/--out/--output wherever a command writes, every default
in --help, an example per subcommand that parses, a suggestion for a mistyped subcommand."""

from __future__ import annotations

import argparse
import shlex

import pytest

from pqcompress.cli.examples import EXAMPLES
from pqcompress.cli.main import build_parser, main

WRITERS = {  # subcommand -> the args it needs besides -o
    "train": ["--model", "cnn5", "--dataset", "digits"],
    "quickstart": [],
    "export": ["runs/x"],
    "posttrain": ["runs/x"],
    "report": ["runs/r.db"],
    "distill": ["recipe.yaml"],
    "search": ["spec.yaml", "--store", "s.db"],
    "loadtest": [],
    "example-image": [],
}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("command", sorted(WRITERS))
@pytest.mark.parametrize("flag", ["-o", "--out", "--output"])
def test_every_command_that_writes_takes_o_out_and_output(command, flag):
    args = build_parser().parse_args([command, *WRITERS[command], flag, "target"])
    dest = "output" if hasattr(args, "output") else "out"
    assert str(getattr(args, dest)) == "target"


def test_the_writers_are_every_command_with_an_output_option():
    writers = {
        name
        for name, p in _subcommands().items()
        if any("--out" in a.option_strings for a in p._actions)
    }
    assert writers == set(WRITERS)


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_option_shows_its_default_and_every_command_has_an_example(command):
    parser = _subcommands()[command]
    text = parser.format_help()
    assert "examples:" in text and f"pqcompress {command}" in text.split("examples:")[1]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        if action.default in (None, False, [], argparse.SUPPRESS):
            continue
        shown = formatter._expand_help(action) if action.help else ""
        assert "default" in shown, f"{command} {action.option_strings[0]}: no default in help"


def test_train_help_names_the_library_defaults():
    text = _subcommands()["train"].format_help().split("options:", 1)[1]

    def described(flag: str) -> str:
        return " ".join(text.split(f"\n  {flag} ", 1)[1].split("\n  --", 1)[0].split())

    for flag, default in (("--epochs", "10"), ("--lr", "0.05"), ("--batch-size", "64")):
        assert f"default: {default}" in described(flag), flag
    assert "when compressing, default: 8" in described("--bits")


@pytest.mark.parametrize(
    "example", [(c, e) for c, lines in sorted(EXAMPLES.items()) for e in lines], ids=str
)
def test_every_example_parses(example):
    command, line = example
    words = [w for w in shlex.split(line) if "=" not in w.split("/")[0] or w.startswith("-")]
    assert words[0] == "pqcompress" and words[1] == command
    build_parser().parse_args(words[1:])  # argparse exits (SystemExit) on a bad example


def test_a_mistyped_subcommand_gets_a_suggestion(capsys):
    with pytest.raises(SystemExit) as info:
        main(["trian"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "did you mean 'train'?" in err and len(err.strip().splitlines()) == 1


def test_export_refuses_an_output_extension_it_cannot_write(capsys, tmp_path):
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "model.bin")]) == 2
    assert "use a .pqz or .onnx file name" in capsys.readouterr().err
    assert main(["export", str(tmp_path), "-o", str(tmp_path / "m.pqz"), "--format", "onnx"]) == 2
    assert "--format onnx but -o" in capsys.readouterr().err
