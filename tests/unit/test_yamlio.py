"""Every YAML file a user hands us: refused in one ConfigError line, or read."""

from __future__ import annotations

from pathlib import Path

import pytest

from pqcompress.cli.main import main
from pqcompress.errors import ConfigError
from pqcompress.yamlio import MAX_YAML_BYTES, read_yaml_file


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a: &a [" + ", ".join(['"lol"'] * width) + "]"]
    prev = "a"
    for i in range(1, levels):
        name = f"n{i}"
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
        prev = name
    return "\n".join(lines) + "\n"


def write(tmp: Path, name: str, data: bytes | str) -> Path:
    p = tmp / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


CASES = {
    "binary": (b"\x7fELF\x00\x01\x02", "is a binary file"),
    "latin1": ("model: caf\xe9\n".encode("latin-1"), "is not UTF-8 text"),
    "syntax": ("a: [1, 2\nb: 3\n", "not valid YAML at line 2, column 2"),
    "tabs": ("a:\n\tb: 1\n", "not valid YAML at line 2"),
    "laughs": (laughs(), "expands to more than 100,000 nodes"),
    "deep": ("[" * 5000 + "]" * 5000, "nests too deeply"),
    "huge": (b"a: 1\n" + b"#" * (MAX_YAML_BYTES + 1), "a YAML config is at most"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_yaml_files_are_one_line_config_errors(tmp_path, case):
    data, needle = CASES[case]
    path = write(tmp_path, f"{case}.yaml", data)
    with pytest.raises(ConfigError, match=None) as info:
        read_yaml_file(path)
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_missing_file_and_directory_say_what_they_are(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        read_yaml_file(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory; expected a YAML file"):
        read_yaml_file(tmp_path)


def test_a_few_honest_aliases_are_fine(tmp_path):
    path = write(tmp_path, "ok.yaml", "base: &b {lr: 0.1}\nx: *b\ny: *b\n")
    assert read_yaml_file(path) == {"base": {"lr": 0.1}, "x": {"lr": 0.1}, "y": {"lr": 0.1}}


@pytest.mark.parametrize("command", ["train --recipe", "sweep"])
@pytest.mark.parametrize("case", ["binary", "laughs", "syntax"])
def test_the_cli_prints_one_line_and_exits_2(tmp_path, capsys, command, case):
    data, needle = CASES[case]
    path = write(tmp_path, f"{case}.yaml", data)
    argv = [*command.split(), str(path)]
    if command == "sweep":
        argv += ["--store", str(tmp_path / "s.db")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pqcompress: error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["train", "--alpha", "abc"], "invalid float value: 'abc'"),
        (["train", "--bits"], "expected one argument"),
        (["sweep"], "required"),
        (["no-such-command"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line(capsys, argv, needle):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("pqcompress: error: ") and err.count("\n") == 1, err
    assert needle in err and "--help" in err


@pytest.mark.parametrize("where", ["under_a_file", "proc"])
def test_an_output_directory_that_cannot_be_made_is_one_line(tmp_path, capsys, where):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "run" if where == "under_a_file" else Path("/proc/pqc-test/run")
    argv = ["train", "--model", "cnn5", "--dataset", "digits", "--epochs", "1", "--out", str(out),
            "--no-progress", "--max-steps-per-epoch", "1"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("pqcompress: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_exponent_floats_are_numbers_in_every_file_and_set_value(tmp_path):
    """YAML 1.1 reads `1e-3` as a string; the package's one loader reads it as a number in
    recipes, sweep and search files and `--set` values alike."""
    from pqcompress.cli.main import build_parser
    from pqcompress.cli.train import config_from_args
    from pqcompress.config import ExperimentConfig
    from pqcompress.search import SearchSpec
    from pqcompress.yamlio import parse_yaml_text

    assert parse_yaml_text("[1e-3, 5E4, .5, -2e+1, 1_000, 1.5, '1e-3']", "t") == [
        0.001, 50000.0, 0.5, -20.0, 1000, 1.5, "1e-3",
    ]  # fmt: skip
    recipe = tmp_path / "r.yaml"
    recipe.write_text("model: cnn5\ndataset: digits\ntrain: {lr: 1e-3, weight_decay: 5E-4}\n")
    cfg = ExperimentConfig.from_yaml(recipe)
    assert (cfg.train.lr, cfg.train.weight_decay) == (0.001, 0.0005)
    args = build_parser().parse_args(["train", "--recipe", str(recipe), "--set", "train.lr=2e-4"])
    assert config_from_args(args).train.lr == 0.0002
    spec = tmp_path / "s.yaml"
    spec.write_text("model: runs/x\nconstraints: {accuracy_drop_max: 2e-2}\n")
    assert SearchSpec.from_yaml(spec).constraints == {"accuracy_drop_max": 0.02}
