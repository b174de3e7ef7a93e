"""Every example of README.md and docs/*.md is a test, so an example cannot drift from the code.

- ``pqcompress ...`` command lines (bash blocks, and the examples of every ``--help``) must
  parse; the cheap ones (listings, ``--dataset digits`` training, export, inspect, evaluate,
  example-image) run for real, in order, in a scratch folder; a repository file they name
  (``recipes/...``, ``benchmarks/...``) must exist.
- Python blocks must compile and every ``pqcompress`` name they import or use must exist;
  a block preceded by ``<!-- example: run -->`` runs for real.
- YAML blocks must parse.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
RUN_MARK = "<!-- example: run -->"
CHEAP = {"models", "datasets", "example-image", "export", "inspect", "evaluate"}
REPO_PATH = re.compile(r"^(recipes|benchmarks|deploy|docs|src|tests)/\S+\.\w+$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str
    run: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks() -> list[Block]:
    out = []
    for path in DOCS:
        lines = path.read_text(encoding="utf-8").splitlines()
        i = 0
        while i < len(lines):
            found = FENCE.match(lines[i])
            if not found:
                i += 1
                continue
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            run = i > 0 and lines[i - 1].strip() == RUN_MARK
            out.append(Block(path, i + 1, found.group(1), "\n".join(lines[i + 1 : j]), run))
            i = j + 1
    return out


BLOCKS = blocks()


def commands(text: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split at
    ``;``, ``&&``, ``||``, ``|`` and ``&``, leading ``VAR=value`` assignments dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:
            continue
        current: list[str] = []
        for word in [*words, ";"]:
            if word in (";", "&&", "||", "|", "&"):
                while current and re.match(r"^[A-Z_][A-Z0-9_]*=", current[0]):
                    current.pop(0)
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
    return out


def _shell_blocks() -> list[Block]:
    return [b for b in BLOCKS if b.lang in ("bash", "sh", "console", "shell")]


def test_the_collector_finds_the_examples():
    assert len(_shell_blocks()) >= 15 and len([b for b in BLOCKS if b.lang == "python"]) >= 8
    assert any(b.run for b in BLOCKS)


@pytest.mark.parametrize("block", _shell_blocks(), ids=lambda b: b.id)
def test_every_command_line_parses_and_names_files_that_exist(block):
    from pqcompress.cli.main import build_parser

    for words in commands(block.text):
        for word in words:
            if REPO_PATH.match(word) and not any(c in word for c in "*$<>{"):
                assert (ROOT / word).exists(), f"{block.id}: {word} does not exist"
        if words[0] != "pqcompress":
            continue
        try:
            build_parser().parse_args(words[1:])
        except SystemExit as exc:  # argparse refused it
            pytest.fail(f"{block.id}: `{shlex.join(words)}` does not parse (exit {exc.code})")


def _cheap(words: list[str]) -> bool:
    if len(words) < 2 or words[0] != "pqcompress" or "--help" in words:
        return False
    if words[1] == "train":
        return "--dataset" in words and words[words.index("--dataset") + 1] == "digits"
    return words[1] in CHEAP


RUN_DOCS = sorted({b.path for b in _shell_blocks() if any(map(_cheap, commands(b.text)))})


@pytest.mark.slow
@pytest.mark.parametrize("doc", RUN_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_cheap_command_lines_run_as_written(doc, tmp_path, monkeypatch, capsys):
    """In document order, in one scratch folder (so `export runs/x` finds the run `train -o
    runs/x` made); a command that needs what an expensive one would have made is skipped."""
    from pqcompress.cli.main import main

    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    ran = 0
    for block in [b for b in _shell_blocks() if b.path == doc]:
        for words in commands(block.text):
            if not _cheap(words) or any(w.startswith("$") for w in words):
                continue
            sources = [w for w in words[2:3] if not w.startswith("-")]
            if words[1] in ("export", "inspect", "evaluate") and not all(
                Path(s).exists() for s in sources
            ):
                continue  # made by a command that is only parsed (a long run)
            if words[1] == "train" and "--epochs" not in words:
                words = [*words, "--epochs", "1"]
            code = main([*words[1:], *(["--no-progress"] if words[1] == "train" else [])])
            err = capsys.readouterr().err
            assert code == 0, f"{block.id}: `{shlex.join(words)}` exited {code}: {err[-500:]}"
            ran += 1
    if doc.name == "README.md":
        assert ran >= 5  # README's own first commands always run


def _python_blocks() -> list[Block]:
    return [b for b in BLOCKS if b.lang == "python"]


@pytest.mark.parametrize("block", _python_blocks(), ids=lambda b: b.id)
def test_every_python_block_compiles_and_names_real_api(block):
    tree = ast.parse(block.text, filename=block.id)
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pqcompress"):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"{block.id}: {node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pqcompress"):
                    importlib.import_module(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            module = importlib.import_module(aliases[node.value.id])
            assert hasattr(module, node.attr), f"{block.id}: {aliases[node.value.id]}.{node.attr}"


@pytest.mark.parametrize("block", [b for b in _python_blocks() if b.run], ids=lambda b: b.id)
def test_python_blocks_marked_run_run_as_written(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(block.text, block.id, "exec"), {"__name__": "__example__"})


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "yaml"], ids=lambda b: b.id)
def test_every_yaml_block_parses(block):
    yaml.safe_load(block.text)


def test_every_help_example_names_files_that_exist():
    from pqcompress.cli.examples import EXAMPLES

    for lines in EXAMPLES.values():
        for line in lines:
            for words in commands(line):
                for word in words:
                    if REPO_PATH.match(word):
                        assert (ROOT / word).exists(), f"--help example names {word}"
