"""Launchers of the training-side console scripts that say which extra to install when one is missing.

A runtime-only install (`pip install "edge-restore[edge]"`) also installs `edge-restore-train`,
`-export`, `-parity` and `-eval`; without torch, ONNX or TensorFlow they would end in a traceback.
Instead each prints one line naming the extra and exits 78 (EX_CONFIG, as for any missing
dependency; docs/exit-codes.md).
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable

from .errors import EXIT_BAD_MODEL

#: Import names of this project: a ModuleNotFoundError for one of them is a bug, not a missing extra.
_OWN = {"edge_runtime", "edge_restore", "train", "export"}


def _load(module: str) -> Callable[..., int]:
    """`main` of train.X / export.X: edge_restore.X when installed, the top-level package in a checkout."""
    try:
        mod = importlib.import_module(f"edge_restore.{module}")
    except ModuleNotFoundError as exc:
        if exc.name not in ("edge_restore", f"edge_restore.{module.split('.')[0]}"):
            raise
        mod = importlib.import_module(module)  # a checkout run without installing it
    return mod.main


def run_with_extra(prog: str, extras: str, load: Callable[[], Callable[..., int]], argv: list[str] | None = None) -> int:
    """Run load()(argv); if a third-party import is missing, say `pip install "edge-restore[extras]"` instead."""
    try:
        main = load()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] in _OWN:
            raise
        which = " and ".join(extras.split(","))
        print(f'{prog}: error: needs the {which} extra{"s" if "," in extras else ""} ({exc.name} is not installed): '
              f'pip install "edge-restore[{extras}]"', file=sys.stderr)
        return EXIT_BAD_MODEL
    return main(argv)


def train_main(argv: list[str] | None = None) -> int:
    return run_with_extra("edge-restore-train", "train", lambda: _load("train.cli"), argv)


def export_main(argv: list[str] | None = None) -> int:
    return run_with_extra("edge-restore-export", "train,export", lambda: _load("export.cli"), argv)


def parity_main(argv: list[str] | None = None) -> int:
    return run_with_extra("edge-restore-parity", "train,export", lambda: _load("export.verify"), argv)


def eval_main(argv: list[str] | None = None) -> int:
    return run_with_extra("edge-restore-eval", "eval", lambda: _load("train.evaluate"), argv)
