"""The reproduce scripts in scripts/ are hours of CPU: a renamed flag must fail here, not at hour three.

Every `$PY -m MODULE ...` command in them is parsed by that module's real argument parser.
"""

import argparse
import re
import shlex
from pathlib import Path

import pytest

from export.cli import build_parser as export_parser
from export.verify import build_parser as verify_parser
from train.cli import build_parser as train_parser
from train.evaluate import build_parser as evaluate_parser

SCRIPTS = sorted((Path(__file__).resolve().parents[1] / "scripts").glob("reproduce_*.sh"))
PARSERS = {"train": train_parser, "export": export_parser, "export.verify": verify_parser,
           "train.evaluate": evaluate_parser}


def python_commands(script: Path) -> list[list[str]]:
    """The argument lists of the script's `$PY -m MODULE ...` commands, continuation lines joined
    and shell variables replaced by their `NAME=${NAME:-default}` default or else a placeholder word."""
    text = re.sub(r"\\\n\s*", " ", script.read_text())
    # NAME=${NAME:-default} settings: a variable is replaced by its default (numbers must parse)
    defaults = dict(re.findall(r"^(\w+)=\$\{\1:-([^}]*)\}", text, re.MULTILINE))
    defaults.pop("PY", None)
    text = re.sub(r"\$\{?(\w+)\}?(?![\w\[%:])", lambda m: defaults.get(m.group(1), m.group(0)), text)
    commands = []
    for line in text.splitlines():
        line = line.split(" #")[0].strip()
        line = re.sub(r'^run_stage "[^"]*" ', "", line)  # a time-boxed stage: run_stage "$LIMIT" $PY -m ...
        if not line.startswith("$PY -m "):
            continue
        line = re.sub(r"\$\{?\w+[^\s\"/]*\}?", "VAR", line)  # $OUT, "$RUNS/x", ${set%% *}, $(...)'s inner
        commands.append(shlex.split(line)[2:])
    return commands


def test_the_scripts_are_found_and_hold_commands():
    assert {p.name for p in SCRIPTS} >= {"reproduce_denoise.sh", "reproduce_minimal.sh", "reproduce_deblur.sh"}
    assert all(python_commands(p) for p in SCRIPTS)


@pytest.fixture
def strict_parsers(monkeypatch):
    """argparse errors raise instead of printing usage and exiting."""
    def refuse(self: argparse.ArgumentParser, message: str) -> None:
        raise AssertionError(f"{self.prog}: {message}")

    monkeypatch.setattr(argparse.ArgumentParser, "error", refuse)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_every_python_command_parses(script, strict_parsers):
    for module, *args in python_commands(script):
        assert module in PARSERS, f"{script.name}: no parser known for `-m {module}`"
        PARSERS[module]().parse_args(args)


def test_a_renamed_flag_is_caught(tmp_path, strict_parsers):
    script = tmp_path / "reproduce_x.sh"
    script.write_text('$PY -m train --task denoise \\\n    --stpes 10 --out "$RUNS/x"  # a comment\n')
    (command,) = python_commands(script)
    assert command == ["train", "--task", "denoise", "--stpes", "10", "--out", "VAR/x"]
    with pytest.raises(AssertionError, match="stpes"):
        train_parser().parse_args(command[1:])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_evaluations_can_be_rerun(script):
    """A rerun of a script writes its reports again: train.evaluate refuses a used --out without --overwrite."""
    for module, *args in python_commands(script):
        if module == "train.evaluate":
            assert evaluate_parser().parse_args(args).overwrite, f"{script.name}: train.evaluate without --overwrite"
