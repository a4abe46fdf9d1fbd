"""Build hook (everything else is in pyproject.toml): record the SHA-256 of each shipped model.

The wheel carries edge_runtime/models/SHA256SUMS (`sha256sum` format); the runtime checks a model
against it when the model is loaded by short name (edge_runtime/catalog.py).
"""

import hashlib
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildPyWithModelSums(build_py):
    def run(self) -> None:
        super().run()
        folder = Path(self.build_lib) / "edge_runtime" / "models"
        models = sorted(folder.glob("*.tflite"))
        if models:  # an editable build copies no data files: nothing to record
            lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}\n" for p in models]
            (folder / "SHA256SUMS").write_text("".join(lines), encoding="utf-8")


setup(cmdclass={"build_py": BuildPyWithModelSums})
